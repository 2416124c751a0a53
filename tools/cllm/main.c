/* main.c: the cllm command: dispatches to a subcommand (commands.h). */
#include <stdio.h>
#include <string.h>

#include "commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} command_t;

static const command_t commands[] = {
    { "generate", cmd_generate, "generate text from a prompt" },
    { "tokenize", cmd_tokenize, "print the tokens of a text" },
    { "mkmodel", cmd_mkmodel, "write a GGUF model with random weights" },
    { "serve", cmd_serve, "serve a model with an OpenAI-compatible HTTP API" },
    { "bench", cmd_bench, "benchmark a server (bench serve) or compare two cllm serve setups" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: cllm COMMAND [options]   (cllm COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "cllm: unknown command '%s' (try: cllm --help)\n", argv[1]);
    return 2;
}

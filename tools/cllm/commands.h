/* commands.h: the subcommands of the cllm program. Each parses its own flags (--help on each),
 * prints errors as one line on stderr and returns the process exit code. */
#ifndef CLLM_TOOLS_COMMANDS_H
#define CLLM_TOOLS_COMMANDS_H

int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif

/* cli_args.h: command-line value parsing shared by the cllm subcommands.
 * Owns nothing; messages go to stderr as one line "CMD: FLAG expects ...". */
#ifndef CLLM_TOOLS_CLI_ARGS_H
#define CLLM_TOOLS_CLI_ARGS_H

/* s as a base-10 integer in [lo, hi] into *out: 0; else -1 after a one-line message naming cmd
 * (e.g. "cllm generate") and flag. *out is untouched on failure. */
int cli_parse_long(const char *cmd, const char *flag, const char *s, long lo, long hi, long *out);

#endif

/* chat_template_builtin.h: the chat templates of well-known model families, as their model
 * cards ship them (Hugging Face tokenizer_config.json `chat_template`), for models whose GGUF
 * carries no `tokenizer.chat_template` or when the user names a template.
 *
 * Names: "llama3" (Meta-Llama-3-8B-Instruct), "llama3.1" = "llama3.3" (Llama 3.1 / 3.3
 * Instruct, tool calling, "Cutting Knowledge Date" header), "llama3.2" (Llama 3.2 1B/3B
 * Instruct, date from strftime_now), "llama2" (Llama-2-chat), "chatml", "qwen2" (Qwen2
 * Instruct: ChatML with a default system prompt), "qwen2.5" (Qwen2.5 Instruct, tools),
 * "mistral" = "mistral-v3" (Mistral-7B-Instruct-v0.3: system prompt joined to the last user
 * turn, tools), "mistral-v1" (Mistral-7B-Instruct-v0.1/v0.2: no system role),
 * "mistral-v7" (Mistral-Large-Instruct-2411: [SYSTEM_PROMPT]), "gemma" = "gemma2" (Gemma 1/2:
 * no system role), "gemma3" (system prompt prefixed to the first user turn), "phi3"
 * (Phi-3.5-mini-instruct), "deepseek-r1" (DeepSeek-R1-Distill).
 * Invariants: the texts are constant and outlive every caller. */
#ifndef CLLM_SERVER_CHAT_TEMPLATE_BUILTIN_H
#define CLLM_SERVER_CHAT_TEMPLATE_BUILTIN_H

#include <stddef.h>

/* The Jinja source of the built-in template `name` (or an alias), or NULL if unknown. */
const char *chat_template_builtin(const char *name);
/* Number of built-in names (aliases included) and the i-th name, for listings (NULL past the end). */
size_t chat_template_builtin_count(void);
const char *chat_template_builtin_name(size_t i);

#endif

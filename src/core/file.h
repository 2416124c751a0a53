/* file.h: whole small files into memory (prompts, chat templates). */
#ifndef CLLM_CORE_FILE_H
#define CLLM_CORE_FILE_H

#include <stddef.h>

/* Reads path into a malloc'd NUL-terminated buffer (*len bytes, if len is not NULL). NULL if
 * the file cannot be read or holds more than max bytes (errno tells which, EFBIG for the size). */
char *file_read_all(const char *path, size_t max, size_t *len);

#endif

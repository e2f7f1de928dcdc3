/*
 * banned.h - functions that are easy to misuse are compile errors.
 * Use buf_addf(), snprintf(), str_copy() and
 * str_to_int() instead.
 */
#ifndef VERANDA_CORE_BANNED_H
#define VERANDA_CORE_BANNED_H

/*
 * The Makefile passes "-include core/banned.h" to every compilation, so
 * the system headers that declare these functions come first and the bans
 * apply to every line of Veranda's own code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef gets
#define gets(x) BANNED(gets)

#endif

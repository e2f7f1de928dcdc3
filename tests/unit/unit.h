/*
 * unit.h - common includes for cmocka unit tests.  Each test file is one
 * program: it defines its tests and a main() that runs them with
 * cmocka_run_group_tests().
 */
#ifndef VERANDA_TESTS_UNIT_H
#define VERANDA_TESTS_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#endif

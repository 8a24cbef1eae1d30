/*
 * The few lines every unit test program here shares: CHECK counts and reports
 * a failure without stopping, so one run lists all of them.
 */
#ifndef NETPLUGIN_TESTS_CHECK_H
#define NETPLUGIN_TESTS_CHECK_H

#include <cstdio>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                     \
    do {                                                                \
        checks++;                                                       \
        if (!(cond)) {                                                  \
            failures++;                                                 \
            std::printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
        }                                                               \
    } while (0)

#endif

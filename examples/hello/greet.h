/* libgreet: a tiny shared library used by the pkgbuild example. */
#ifndef GREET_H
#define GREET_H

#define GREET_VERSION "1.2.0"

/* Writes a greeting for `name` to stdout; returns 0 on success. */
int greet(const char *name);

/* The library's version string. */
const char *greet_version(void);

#endif

#include <stdio.h>
#include <string.h>
#include "greet.h"

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("hello (libgreet %s)\n", greet_version());
		return 0;
	}
	return greet(argc > 1 ? argv[1] : NULL) == 0 ? 0 : 1;
}

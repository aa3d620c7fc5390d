#include <stdio.h>
#include "shapes.h"

int main(int argc, char **argv)
{
	const char *shape = argc > 1 ? argv[1] : "triangle";
	int n = shapes_sides(shape);
	printf("%s: %d sides, %s\n", shape, n, colors_of(n));
	return n ? 0 : 1;
}

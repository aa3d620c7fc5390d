#include "shapes.h"

const char *colors_of(int sides)
{
	return sides == 3 ? "red" : sides == 4 ? "blue" : "grey";
}

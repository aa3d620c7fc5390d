/* Two tiny libraries for tests/e2e/split-lib.yaml. */
int shapes_sides(const char *shape);
const char *colors_of(int sides);

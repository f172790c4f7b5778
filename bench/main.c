/* main.c - sombra-bench: the benchmark suite (bench.c) as a program of its own. */
#include "bench.h"

int
main(int argc, char **argv)
{
        return sombra_bench_main(argc, argv);
}

/*
 * bench.h - the benchmark suite as a function, so that both sombra-bench and
 * `sombra bench` run it.
 */
#ifndef SOMBRA_BENCH_H
#define SOMBRA_BENCH_H

/*
 * Parses the sombra-bench options in argv (argv[0] names the program in
 * messages; getopt starts at optind, so a caller that used getopt before
 * resets it to 0) and runs the selected workloads. Returns the exit status:
 * 0 done, 1 a workload failed, 2 a bad option.
 */
int sombra_bench_main(int argc, char **argv);

#endif

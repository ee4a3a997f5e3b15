/* top.h - `conveyor top`: a live terminal view of a running engine. */
#ifndef CONVEYOR_CLI_TOP_H
#define CONVEYOR_CLI_TOP_H

/* Runs `conveyor top ARGS`; returns the exit code (0, 1 engine unreachable,
 * 2 usage). */
int cmd_top(int argc, char **argv);

#endif

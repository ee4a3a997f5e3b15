/* tap.h - `conveyor tap`: live records leaving a stage of a running engine. */
#ifndef CONVEYOR_CLI_TAP_H
#define CONVEYOR_CLI_TAP_H

/* Runs `conveyor tap ARGS`; returns the exit code (0; 1 engine unreachable
 * or tapping refused; 2 usage, unknown pipeline or stage). */
int cmd_tap(int argc, char **argv);

#endif

/* diag.h - collects FILE:LINE:COLUMN: error: MESSAGE diagnostics. */
#ifndef CONVEYOR_DIAG_H
#define CONVEYOR_DIAG_H

#include <stdio.h>

struct diag {
	FILE *out;      /* where messages go as they come; NULL to keep them silent */
	int errors;     /* count of errors reported */
	int warnings;   /* count of warnings reported */
	char last[512]; /* the last message, for tests */
};

/* Reports an error at file:line:column (line/column 0 omits them). */
void diag_error(struct diag *d, const char *file, int line, int column, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
void diag_warning(struct diag *d, const char *file, int line, int column, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));

#endif

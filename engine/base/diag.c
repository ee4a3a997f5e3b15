#include "base/diag.h"

#include <stdarg.h>
#include <stdio.h>

static void diag_emit(struct diag *d, const char *kind, const char *file, int line, int column,
                      const char *fmt, va_list ap)
{
	char msg[400];
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (line > 0)
		snprintf(d->last, sizeof d->last, "%s:%d:%d: %s: %s", file, line, column, kind,
		         msg);
	else
		snprintf(d->last, sizeof d->last, "%s: %s: %s", file, kind, msg);
	if (d->out)
		fprintf(d->out, "%s\n", d->last);
}

void diag_error(struct diag *d, const char *file, int line, int column, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_emit(d, "error", file, line, column, fmt, ap);
	va_end(ap);
	d->errors++;
}

void diag_warning(struct diag *d, const char *file, int line, int column, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_emit(d, "warning", file, line, column, fmt, ap);
	va_end(ap);
	d->warnings++;
}

#include "runtime/summary.h"

#include <stdatomic.h>
#include <stdio.h>

#include "base/log.h"
#include "runtime/dead_letter.h"
#include "runtime/pipeline.h"

void pipeline_summary_get(const struct pipeline *p, struct pipeline_summary *out)
{
	const struct cv_stage *source = &p->stages[0], *sink = &p->stages[p->nstages - 1];
	*out = (struct pipeline_summary){
	        .in = atomic_load(&source->total_out),
	        .delivered = atomic_load(&sink->total_out),
	        .rejected = atomic_load(&sink->total_dropped),
	        .dead_lettered = dead_letter_kept(p->dead_letter),
	        .failed = atomic_load(&sink->total_errors),
	};
	for (size_t i = 1; i + 1 < p->nstages; i++)
		out->dropped += atomic_load(&p->stages[i].total_dropped);
}

bool summary_log_stop(struct pipeline *const *pipelines, size_t npipelines)
{
	bool failed = false;
	for (size_t i = 0; i < npipelines; i++) {
		struct pipeline *p = pipelines[i];
		if (!p)
			continue;
		dead_letter_warn_final(p->dead_letter);
		struct pipeline_summary s;
		pipeline_summary_get(p, &s);
		const struct log_count counts[] = {
		        {"in", s.in},
		        {"delivered", s.delivered},
		        {"rejected", s.rejected},
		        {"dead_lettered", s.dead_lettered},
		        {"failed", s.failed},
		        {"dropped", s.dropped},
		};
		char msg[256];
		snprintf(msg, sizeof msg,
		         "summary: in=%llu delivered=%llu rejected=%llu dead_lettered=%llu "
		         "failed=%llu dropped=%llu",
		         (unsigned long long)s.in, (unsigned long long)s.delivered,
		         (unsigned long long)s.rejected, (unsigned long long)s.dead_lettered,
		         (unsigned long long)s.failed, (unsigned long long)s.dropped);
		log_write_counts(s.failed ? CV_LOG_ERROR : CV_LOG_INFO, p->cfg.name, msg, counts,
		                 sizeof counts / sizeof *counts);
		failed |= s.failed > 0;
	}
	return failed;
}

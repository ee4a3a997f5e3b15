/*
 * conveyor/plugin.h - the one header a Conveyor plugin needs.
 *
 * A plugin is a shared object that exports one descriptor, `struct cv_plugin`,
 * under the symbol CV_PLUGIN_SYMBOL ("cv_plugin_descriptor"). The host reads
 * the descriptor, checks its ABI, validates the user's options against the
 * descriptor's option schema, fills the plugin's config struct, and calls the
 * plugin through the callbacks below. The host hands the plugin a table of
 * services (`struct cv_host_api`), so a plugin links nothing of the host.
 *
 * Data model: a batch (`struct cv_batch`) holds records; a record is a
 * time-series point (measurement, timestamp in ns, tags, typed fields). All
 * batch memory is owned by the host: records, field slots and the batch arena
 * are recycled when the batch is acknowledged. Strings a record points to must
 * live at least as long as the batch: static or plugin-lifetime memory, or
 * memory from cv_batch_alloc() / cv_batch_strdup().
 *
 * Delivery: a source fills a batch; transforms edit it in place; the sink
 * delivers it and acknowledges each record (delivered, rejected or failed).
 * Once every record of a batch is settled the host hands the batch back to
 * the source's `ack` callback, on the source's own thread, so a source can
 * commit exactly what was delivered.
 *
 * Errors: functions return 0 or a negative CV_E* code. Never 1 for success.
 *
 * ABI: CV_ABI_MAJOR changes break plugins; CV_ABI_MINOR grows structs at the
 * end only. The host refuses a plugin with another major or a newer minor,
 * and accepts an older, shorter descriptor by its struct_size.
 */
#ifndef CONVEYOR_PLUGIN_H
#define CONVEYOR_PLUGIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CV_ABI_MAJOR 1
#define CV_ABI_MINOR 0

/* The symbol under which every plugin exports its descriptor. */
#define CV_PLUGIN_SYMBOL "cv_plugin_descriptor"

/* Marks the descriptor for export from a plugin built with
 * -fvisibility=hidden. Use: CV_PLUGIN_EXPORT const struct cv_plugin
 * cv_plugin_descriptor = { CV_PLUGIN_HEADER, ... }; */
#define CV_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Error codes: 0 is success, these are negative. */
enum cv_error {
	CV_OK = 0,
	CV_EINVAL = -1,  /* bad argument or bad data */
	CV_ENOMEM = -2,  /* out of memory, or batch arena full */
	CV_EIO = -3,     /* I/O or network failure; may succeed on retry */
	CV_EAGAIN = -4,  /* nothing now, call again */
	CV_EOF = -5,     /* a source has no more records, ever */
	CV_ECONFIG = -6, /* the configuration cannot work */
	CV_ESTATE = -7,  /* called in the wrong state */
};

/* ------------------------------------------------------------------------ */
/* Records and batches                                                       */
/* ------------------------------------------------------------------------ */

enum cv_field_type {
	CV_FIELD_FLOAT = 0,
	CV_FIELD_INT = 1,
	CV_FIELD_BOOL = 2,
	CV_FIELD_STRING = 3,
};

/* A tag: string key, string value. Neither is NUL-terminated necessarily;
 * use the lengths. */
struct cv_tag {
	const char *key;
	const char *value;
	uint32_t key_len;
	uint32_t value_len;
};

/* A typed field. For CV_FIELD_STRING, `v.s` points at `str_len` bytes. */
struct cv_field {
	const char *key;
	uint16_t key_len;
	uint8_t type; /* enum cv_field_type */
	uint8_t reserved;
	uint32_t str_len;
	union {
		double f;
		int64_t i;
		bool b;
		const char *s;
	} v;
};

/* Record flags. DROPPED is set by transforms (filtered out); the sink skips
 * dropped records. The DELIVERED / REJECTED / FAILED outcome is set by the host
 * when the sink acknowledges the record. */
enum cv_record_flag {
	CV_RECORD_DROPPED = 1u << 0,   /* filtered by a transform */
	CV_RECORD_DELIVERED = 1u << 1, /* the sink delivered it */
	CV_RECORD_REJECTED = 1u << 2,  /* the sink refused it for good (bad data) */
	CV_RECORD_FAILED = 1u << 3,    /* delivery failed (may succeed later) */
};

struct cv_record {
	const char *measurement;
	uint32_t measurement_len;
	uint16_t ntags;
	uint16_t flags;    /* enum cv_record_flag */
	int64_t timestamp; /* ns since the Unix epoch */
	const struct cv_tag *tags;
	struct cv_field *fields;
	uint16_t nfields;
	uint16_t fields_cap; /* slots available at `fields` */
	uint32_t reserved;
	uint64_t token; /* the source's own: an offset, a sequence, anything */
};

/* A batch of records. The first members are public and stable; the host's
 * private part follows and must not be touched. `records[0..count)` are the
 * batch's records, including dropped ones (check CV_RECORD_DROPPED). */
struct cv_batch {
	struct cv_record *records;
	uint32_t count;
	uint32_t capacity; /* records the batch can hold */
	uint32_t live;     /* records not dropped; kept by the host */
	uint32_t reserved;
};

/* ------------------------------------------------------------------------ */
/* Options: the schema from which the host validates, fills and documents   */
/* ------------------------------------------------------------------------ */

enum cv_option_type {
	CV_OPT_END = 0,  /* terminates the option array ({0}) */
	CV_OPT_STRING,   /* const char *            */
	CV_OPT_INT,      /* int64_t                 */
	CV_OPT_BOOL,     /* bool                    */
	CV_OPT_DOUBLE,   /* double                  */
	CV_OPT_SIZE,     /* uint64_t bytes; "4MiB", "512KiB", "1000" */
	CV_OPT_DURATION, /* int64_t ns; "500ms", "10s", "1m", "2h" */
	CV_OPT_ENUM,     /* int: index into `enum_values` */
	CV_OPT_LIST,     /* struct cv_string_list   */
	CV_OPT_MAP,      /* struct cv_string_map (string to string) */
};

enum cv_option_flag {
	CV_OPT_REQUIRED = 1u << 0,
	/* A secret never appears in logs, errors or metrics. The host also
	 * accepts NAME_file: a path whose content (trailing newline removed)
	 * becomes the value. */
	CV_OPT_SECRET = 1u << 1,
	CV_OPT_HAS_MIN = 1u << 2, /* `min` applies (INT, DOUBLE, SIZE, DURATION) */
	CV_OPT_HAS_MAX = 1u << 3, /* `max` applies */
};

struct cv_string_list {
	const char *const *items;
	size_t count;
};

struct cv_string_map {
	const char *const *keys;
	const char *const *values;
	size_t count;
};

/* One option. Names may contain dots ("tls.ca_file"): in YAML they are
 * written nested (tls: { ca_file: ... }) or dotted. `offset` is where the
 * host stores the parsed value in the plugin's config struct. Strings stored
 * in the config belong to the host and live until the plugin's destroy. */
struct cv_option {
	const char *name;
	enum cv_option_type type;
	uint32_t flags;                 /* enum cv_option_flag */
	const char *default_value;      /* as text, parsed like user input; NULL */
	double min;                     /* with CV_OPT_HAS_MIN */
	double max;                     /* with CV_OPT_HAS_MAX */
	const char *const *enum_values; /* CV_OPT_ENUM: NULL-terminated */
	size_t offset;
	const char *description;
};

/* ------------------------------------------------------------------------ */
/* Host services                                                              */
/* ------------------------------------------------------------------------ */

enum cv_log_level {
	CV_LOG_DEBUG = 0,
	CV_LOG_INFO = 1,
	CV_LOG_WARN = 2,
	CV_LOG_ERROR = 3,
};

enum cv_metric_type {
	CV_METRIC_COUNTER = 0,
	CV_METRIC_GAUGE = 1,
	CV_METRIC_HISTOGRAM = 2,
};

/* Opaque handles owned by the host. */
struct cv_stage;  /* one stage of one pipeline: the plugin's identity */
struct cv_metric; /* a metric a plugin registered */

/* Acknowledgement outcomes a sink reports. */
enum cv_ack {
	CV_ACK_DELIVERED = 0,
	CV_ACK_REJECTED = 1, /* bad data: counted and dead-lettered, never retried */
	CV_ACK_FAILED = 2,   /* delivery failed; the source must not commit it */
};

/* The table of host services. It starts with its size and only ever grows at
 * the end: check `struct_size` before using a member added after ABI 1.0. */
struct cv_host_api {
	uint32_t struct_size;
	uint16_t abi_major;
	uint16_t abi_minor;

	/* Logs a message for `stage` (its pipeline and stage name are added).
	 * Never pass secrets. */
	void (*log)(struct cv_stage *stage, enum cv_log_level level, const char *fmt, ...)
	        __attribute__((format(printf, 3, 4)));
	/* True when `level` would be logged: skip building expensive messages. */
	bool (*log_enabled)(struct cv_stage *stage, enum cv_log_level level);

	/* Allocates `size` bytes, 8-aligned, from the batch's arena; freed with
	 * the batch. NULL when the arena is full: end the batch there. */
	void *(*batch_alloc)(struct cv_batch *batch, size_t size);
	/* Copies `len` bytes into the arena, NUL-terminated. NULL when full. */
	char *(*batch_strdup)(struct cv_batch *batch, const char *s, size_t len);
	/* Slow path of cv_record_add_field(): grows the record's field slots in
	 * the arena. NULL when full. */
	struct cv_field *(*record_grow_fields)(struct cv_batch *batch, struct cv_record *record);

	/* Sinks: settle record `index` of `batch` (a record not dropped). Safe
	 * from any thread, once per record. `reason` (may be NULL) is logged and
	 * written to the dead-letter destination for CV_ACK_REJECTED. */
	void (*ack_record)(struct cv_batch *batch, uint32_t index, enum cv_ack outcome,
	                   const char *reason);
	/* Sinks: settle every record of the batch not settled yet. */
	void (*ack_batch)(struct cv_batch *batch, enum cv_ack outcome, const char *reason);

	/* Sources and transforms: hand a record the stage cannot process to the
	 * pipeline's dead-letter destination, counted as dropped. `raw` is the
	 * undecodable input (may be NULL), `record` the record (may be NULL). */
	void (*dead_letter)(struct cv_stage *stage, const void *raw, size_t raw_len,
	                    const struct cv_record *record, const char *reason);

	/* Registers a metric of this stage. The host prefixes nothing: pick a
	 * name starting with "conveyor_" and ending in "_total" for counters. It
	 * adds labels pipeline, stage, plugin, kind, plus `label` (may be NULL)
	 * whose value each update names. Returns NULL on error (bad name). The
	 * metric lives until the engine exits. Histograms use `buckets` (upper
	 * bounds, ascending; NULL for the latency default of 1us..10s). */
	struct cv_metric *(*metric_register)(struct cv_stage *stage, enum cv_metric_type type,
	                                     const char *name, const char *help, const char *label,
	                                     const double *buckets, size_t nbuckets);
	/* Counter: add `value` (>= 0). Gauge: add (may be negative). Histogram:
	 * observe `value`. `label_value` is NULL when the metric has no label. */
	void (*metric_add)(struct cv_metric *metric, const char *label_value, double value);
	/* Gauge only: set. */
	void (*metric_set)(struct cv_metric *metric, const char *label_value, double value);

	/* Reports the stage's health: a failing sink turns /readyz to 503.
	 * `reason` (may be NULL) is logged once per change. */
	void (*set_healthy)(struct cv_stage *stage, bool healthy, const char *reason);

	/* Wall clock, ns since the Unix epoch. */
	int64_t (*now_ns)(void);
	/* The stage's pipeline name and stage name. */
	const char *(*pipeline_name)(const struct cv_stage *stage);
	const char *(*stage_name)(const struct cv_stage *stage);
	/* True once the engine is shutting down: long-running loops end. */
	bool (*stopping)(const struct cv_stage *stage);
};

/* ------------------------------------------------------------------------ */
/* The plugin descriptor                                                      */
/* ------------------------------------------------------------------------ */

enum cv_plugin_kind {
	CV_KIND_SOURCE = 1,
	CV_KIND_TRANSFORM = 2,
	CV_KIND_SINK = 3,
};

enum cv_plugin_flag {
	/* Sink: acknowledges records itself, maybe later and from another thread,
	 * with ack_record() / ack_batch(). Without this flag the host settles the
	 * whole batch when write() returns: 0 delivered, negative failed. */
	CV_PLUGIN_ASYNC_ACK = 1u << 0,
};

/* Everything a plugin exports. Start it with CV_PLUGIN_HEADER.
 *
 * Lifecycle, per stage instance: init -> (start) -> read/process/write ... ->
 * (stop) -> (flush) -> destroy. `state` is what init returned.
 *
 * Threads: a source's read, ack and stop... each stage's callbacks are called
 * from one host thread at a time, except `stop` which may come from another
 * thread to wake a blocked `read`. */
struct cv_plugin {
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t struct_size;

	const char *name;        /* the name specs use: [a-z0-9_]+ */
	const char *version;     /* the plugin's own version, "1.2.0" */
	const char *description; /* one line */
	enum cv_plugin_kind kind;
	uint32_t flags; /* enum cv_plugin_flag */

	/* Options, terminated by {0}; config_size is the size of the struct the
	 * host fills (may be 0 with no options). */
	const struct cv_option *options;
	size_t config_size;

	/* Creates the stage's state from its validated config (which lives until
	 * destroy). Returns 0 and sets *state, or a negative CV_E* and logs why. */
	int (*init)(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
	            void **state);
	/* Frees everything init made. Called once, also after a failed start. */
	void (*destroy)(void *state);

	/* Source: fills `batch` (records_new through cv_batch_record_new()).
	 * Returns 0 with some records (or none, after a short wait, so the host
	 * stays responsive), CV_EOF when finished for good (records already added
	 * still flow), or another negative code on error (the host logs, counts
	 * it and retries after a pause). Should not block longer than ~100 ms. */
	int (*read)(void *state, struct cv_batch *batch);
	/* Source, optional: `batch` is settled; each record's flags tell its
	 * outcome. Called on the source's thread, between reads. */
	void (*ack)(void *state, const struct cv_batch *batch);
	/* Source, optional: stop producing; may be called from another thread. */
	void (*stop)(void *state);

	/* Transform: edits the batch in place: set CV_RECORD_DROPPED to filter,
	 * add fields, add records. Returns 0 or negative (the batch's live records
	 * are then failed). */
	int (*process)(void *state, struct cv_batch *batch);

	/* Sink: delivers the batch's live records. See CV_PLUGIN_ASYNC_ACK. A
	 * synchronous sink may still reject single records with ack_record()
	 * during the call; the host settles the rest when write returns. A
	 * negative return fails every record not settled yet. */
	int (*write)(void *state, struct cv_batch *batch);
	/* Sink, optional: delivers everything pending before `deadline_ns` (a
	 * now_ns() value); called at drain. Returns 0, or CV_EAGAIN if records
	 * remain unsettled at the deadline. */
	int (*flush)(void *state, int64_t deadline_ns);

	/* Optional, any kind: called once after init when every stage of the
	 * pipeline is initialised, before data flows. */
	int (*start)(void *state);
};

/* Fills the first members of a descriptor. */
#define CV_PLUGIN_HEADER                                                                           \
	.abi_major = CV_ABI_MAJOR, .abi_minor = CV_ABI_MINOR,                                      \
	.struct_size = (uint32_t)sizeof(struct cv_plugin)

/* ------------------------------------------------------------------------ */
/* Inline helpers: the fast paths, no call into the host                     */
/* ------------------------------------------------------------------------ */

/* Returns a fresh record at the end of the batch, with its field slots ready
 * and everything else zero, or NULL when the batch is full. */
static inline struct cv_record *cv_batch_record_new(struct cv_batch *batch)
{
	if (batch->count >= batch->capacity)
		return NULL;
	struct cv_record *r = &batch->records[batch->count++];
	struct cv_field *slots = r->fields; /* the host keeps each record's slots */
	uint16_t cap = r->fields_cap;
	*r = (struct cv_record){.fields = slots, .fields_cap = cap};
	batch->live++;
	return r;
}

/* Marks a record dropped (filtered). */
static inline void cv_record_drop(struct cv_batch *batch, struct cv_record *record)
{
	if (!(record->flags & CV_RECORD_DROPPED)) {
		record->flags |= CV_RECORD_DROPPED;
		batch->live--;
	}
}

/* Appends a field slot to a record, or NULL when the arena is full. */
static inline struct cv_field *cv_record_add_field(const struct cv_host_api *api,
                                                   struct cv_batch *batch, struct cv_record *record)
{
	if (record->nfields < record->fields_cap)
		return &record->fields[record->nfields++];
	return api->record_grow_fields(batch, record);
}

static inline struct cv_field *cv_record_add_float(const struct cv_host_api *api,
                                                   struct cv_batch *batch, struct cv_record *record,
                                                   const char *key, uint16_t key_len, double value)
{
	struct cv_field *f = cv_record_add_field(api, batch, record);
	if (f) {
		f->key = key;
		f->key_len = key_len;
		f->type = CV_FIELD_FLOAT;
		f->v.f = value;
	}
	return f;
}

static inline struct cv_field *cv_record_add_int(const struct cv_host_api *api,
                                                 struct cv_batch *batch, struct cv_record *record,
                                                 const char *key, uint16_t key_len, int64_t value)
{
	struct cv_field *f = cv_record_add_field(api, batch, record);
	if (f) {
		f->key = key;
		f->key_len = key_len;
		f->type = CV_FIELD_INT;
		f->v.i = value;
	}
	return f;
}

static inline struct cv_field *cv_record_add_bool(const struct cv_host_api *api,
                                                  struct cv_batch *batch, struct cv_record *record,
                                                  const char *key, uint16_t key_len, bool value)
{
	struct cv_field *f = cv_record_add_field(api, batch, record);
	if (f) {
		f->key = key;
		f->key_len = key_len;
		f->type = CV_FIELD_BOOL;
		f->v.b = value;
	}
	return f;
}

/* Finds a tag by key; NULL if absent. */
static inline const struct cv_tag *cv_record_find_tag(const struct cv_record *record,
                                                      const char *key, uint32_t key_len)
{
	for (uint16_t i = 0; i < record->ntags; i++) {
		const struct cv_tag *t = &record->tags[i];
		if (t->key_len == key_len && __builtin_memcmp(t->key, key, key_len) == 0)
			return t;
	}
	return NULL;
}

/* Finds a field by key; NULL if absent. */
static inline struct cv_field *cv_record_find_field(const struct cv_record *record, const char *key,
                                                    uint32_t key_len)
{
	for (uint16_t i = 0; i < record->nfields; i++) {
		struct cv_field *f = &record->fields[i];
		if (f->key_len == key_len && __builtin_memcmp(f->key, key, key_len) == 0)
			return f;
	}
	return NULL;
}

#ifdef __cplusplus
}
#endif

#endif /* CONVEYOR_PLUGIN_H */

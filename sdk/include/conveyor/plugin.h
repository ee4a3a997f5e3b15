/*
 * conveyor/plugin.h - the one header a Conveyor plugin needs.
 *
 * A plugin is a shared object that exports one descriptor, `struct cv_plugin`,
 * under the symbol CV_PLUGIN_SYMBOL ("cv_plugin_descriptor"); CV_PLUGIN()
 * defines it. The host reads the descriptor, checks its ABI, validates the
 * user's options against the descriptor's option schema, fills the plugin's
 * config struct, and calls the plugin through the callbacks below. The host
 * hands the plugin a table of services (`struct cv_host_api`), so a plugin
 * links nothing of the host.
 *
 * A spec uses plugins by name (NAME.so on the plugin path) or by path:
 *
 *     version: 1
 *     engine: { http: { listen: off } }        # default 127.0.0.1:8000
 *     pipelines:
 *       kmh:                                   # pipelines is a map: name -> pipeline
 *         source: { plugin: sim_speed, lines: 2, count: 100 }
 *         transforms:
 *           - { plugin: ./scale.so, field: speed_ms, factor: 3.6 }
 *         sink: { plugin: file, path: /tmp/out.jsonl }
 *         dead_letter: { path: /tmp/rejected.jsonl }
 *
 * Data model: a batch (`struct cv_batch`) holds records; a record is a
 * time-series point (measurement, timestamp in ns, tags, typed fields). All
 * batch memory is owned by the host: records, field slots and the batch arena
 * are recycled when the batch is settled. Strings a record points to must
 * live at least as long as the batch: static or plugin-lifetime memory (the
 * config, the state), or the batch's arena (api->batch_alloc(),
 * api->batch_strdup()).
 *
 * Delivery: a source fills a batch; transforms edit it in place; the sink
 * delivers it and settles each record (delivered, rejected or failed). Once
 * every record of a batch is settled the host hands the batch back to the
 * source's `ack` callback, on the source's own thread, so a source can commit
 * exactly what was delivered.
 *
 * Errors: functions return 0 or a negative CV_E* code. Never 1 for success.
 *
 * ABI: CV_ABI_MAJOR changes break plugins; CV_ABI_MINOR only adds. The host
 * refuses a plugin built for another major or a newer minor, and accepts an
 * older, shorter descriptor by its struct_size: members it lacks read as zero.
 * Two structs grow at their end with new minors: `struct cv_plugin` and
 * `struct cv_host_api` (test a member with CV_HOST_HAS()), and the host-owned
 * `struct cv_context`. Every other struct is frozen: arrays of them cross the
 * ABI, so their size never changes (checked below). Each declaration says
 * since which ABI it exists; unmarked ones since 1.0.
 */
#ifndef CONVEYOR_PLUGIN_H
#define CONVEYOR_PLUGIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#define CV_STATIC_ASSERT static_assert
#else
#define CV_STATIC_ASSERT _Static_assert
#endif

#define CV_ABI_MAJOR 1
#define CV_ABI_MINOR 1

/* The symbol under which every plugin exports its descriptor. */
#define CV_PLUGIN_SYMBOL "cv_plugin_descriptor"

/* Marks the descriptor for export from a plugin built with
 * -fvisibility=hidden. CV_PLUGIN() applies it. */
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

/* The name of an error code, "CV_ECONFIG", for messages: a static string;
 * "CV_E?" for a code not listed. Since ABI 1.1 (inline: no host call). */
static inline const char *cv_error_name(int code)
{
	static const char *const names[] = {"CV_OK",     "CV_EINVAL", "CV_ENOMEM",  "CV_EIO",
	                                    "CV_EAGAIN", "CV_EOF",    "CV_ECONFIG", "CV_ESTATE"};
	return code <= 0 && code >= CV_ESTATE ? names[-code] : "CV_E?";
}

/* ------------------------------------------------------------------------ */
/* Records and batches (frozen)                                              */
/* ------------------------------------------------------------------------ */

enum cv_field_type {
	CV_FIELD_FLOAT = 0,
	CV_FIELD_INT = 1,
	CV_FIELD_BOOL = 2,
	CV_FIELD_STRING = 3,
};

/* A tag: string key, string value, not necessarily NUL-terminated: use the
 * lengths. The strings belong to whoever made the record (see the data model
 * above). */
struct cv_tag {
	const char *key;
	const char *value;
	uint32_t key_len;
	uint32_t value_len;
};

/* A typed field. For CV_FIELD_STRING, `v.s` points at `str_len` bytes. The
 * key and string belong to whoever set them and must outlive the batch. */
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
 * when the sink settles the record. */
enum cv_record_flag {
	CV_RECORD_DROPPED = 1u << 0,   /* filtered by a transform */
	CV_RECORD_DELIVERED = 1u << 1, /* the sink delivered it */
	CV_RECORD_REJECTED = 1u << 2,  /* the sink refused it for good (bad data) */
	CV_RECORD_FAILED = 1u << 3,    /* delivery failed (may succeed later) */
};

/* A record of a batch: the host owns it and its field slots; what it points
 * to must outlive the batch. */
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

/* A batch of records, owned by the host. These first members are public and
 * frozen; the host's private part follows and must not be touched.
 * `records[0..count)` are the batch's records, including dropped ones (check
 * CV_RECORD_DROPPED, or walk with cv_batch_next()). */
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
	/* struct cv_field_name: a field or tag key of 1 to 65535 bytes, its
	 * length measured by the host. Since ABI 1.1. */
	CV_OPT_FIELD_NAME,
};

enum cv_option_flag {
	CV_OPT_REQUIRED = 1u << 0,
	/* A secret never appears in logs, errors or metrics. The host also
	 * accepts NAME_file: a path whose content (trailing newline removed)
	 * becomes the value. */
	CV_OPT_SECRET = 1u << 1,
	CV_OPT_HAS_MIN = 1u << 2, /* value >= `min` (INT, DOUBLE, SIZE, DURATION) */
	CV_OPT_HAS_MAX = 1u << 3, /* value <= `max` */
	/* Since ABI 1.1: */
	CV_OPT_MIN_EXCLUSIVE = 1u << 4, /* value > `min` (implies HAS_MIN): "factor > 0" */
	CV_OPT_MAX_EXCLUSIVE = 1u << 5, /* value < `max` (implies HAS_MAX) */
	CV_OPT_NONEMPTY = 1u << 6,      /* STRING "" refused; LIST, MAP: at least one entry */
};

/* CV_OPT_LIST: `count` strings, owned by the host (see struct cv_option). */
struct cv_string_list {
	const char *const *items;
	size_t count;
};

/* CV_OPT_MAP: `count` pairs, owned by the host. Nested maps arrive with
 * dotted keys: {a: {b: 1}} is "a.b" = "1". */
struct cv_string_map {
	const char *const *keys;
	const char *const *values;
	size_t count;
};

/* CV_OPT_FIELD_NAME: the key, NUL-terminated, owned by the host, and its
 * length, ready for cv_record_find_field() and cv_record_add_*(). `name` is
 * NULL (and len 0) when the option is not given and has no default. Since
 * ABI 1.1. */
struct cv_field_name {
	const char *name;
	uint16_t len;
};

/* One option. Names may contain dots ("tls.ca_file"): in YAML they are
 * written nested (tls: { ca_file: ... }) or dotted. `offset` is where the
 * host stores the parsed value in the plugin's config struct. The config
 * struct and every string, list and map it points to belong to the host and
 * stay valid and unchanged from `check`/`init` until `destroy` returns. */
struct cv_option {
	const char *name;
	enum cv_option_type type;
	uint32_t flags;                 /* enum cv_option_flag */
	const char *default_value;      /* as text, parsed like user input; NULL */
	double min;                     /* with CV_OPT_HAS_MIN / CV_OPT_MIN_EXCLUSIVE */
	double max;                     /* with CV_OPT_HAS_MAX / CV_OPT_MAX_EXCLUSIVE */
	const char *const *enum_values; /* CV_OPT_ENUM: NULL-terminated */
	size_t offset;
	const char *description;
};

/* An option named as its config member, for the common case:
 *     CV_OPTION(struct my_config, factor, CV_OPT_DOUBLE, .default_value = "1",
 *               .description = "multiplier")
 * The trailing designated initializers set flags, default, bounds, enum values
 * and the description; a dotted name ("tls.ca_file") is written out in full.
 * Since ABI 1.1 (a macro: no host support needed). */
#define CV_OPTION(config_type, member, option_type, ...)                                           \
	{                                                                                          \
		.name = #member, .type = (option_type), .offset = offsetof(config_type, member),   \
		__VA_ARGS__                                                                        \
	}

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
struct cv_metric; /* a metric a plugin registered; lives until the engine exits */
struct cv_check;  /* one stage's options during the plugin's `check`; since ABI 1.1 */

/* Acknowledgement outcomes a sink reports. */
enum cv_ack {
	CV_ACK_DELIVERED = 0,
	CV_ACK_REJECTED = 1, /* bad data: counted and dead-lettered, never retried */
	CV_ACK_FAILED = 2,   /* delivery failed; the source must not commit it */
};

/* The table of host services, owned by the host, valid until the plugin's
 * destroy returns. It grows at the end with new minors: a plugin that uses a
 * member added after the ABI it requires tests CV_HOST_HAS() first. Strings
 * passed in are copied or used during the call only, unless a member says
 * otherwise. */
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

	/* Allocates `size` bytes, 8-aligned, from the batch's arena, owned by
	 * the batch and freed with it. NULL when the arena is full: a source
	 * ends the batch there, a transform returns CV_ENOMEM. */
	void *(*batch_alloc)(struct cv_batch *batch, size_t size);
	/* Copies `len` bytes of `s` into the arena, NUL-terminated, owned by the
	 * batch. NULL when full. */
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

	/* Sources: hand input the stage cannot decode (`raw`, may be NULL) or a
	 * record (may be NULL) to the pipeline's dead-letter destination,
	 * counted as dropped. The record stays in its batch: to take a record
	 * out as well, use reject(). */
	void (*dead_letter)(struct cv_stage *stage, const void *raw, size_t raw_len,
	                    const struct cv_record *record, const char *reason);

	/* Registers a metric of this stage. The host prefixes nothing: pick a
	 * name starting with "conveyor_" and ending in "_total" for counters. It
	 * adds labels pipeline, stage, plugin, kind, plus `label` (may be NULL)
	 * whose value each update names. Returns NULL on error (bad name); updates
	 * of NULL do nothing. The host owns the metric until the engine exits.
	 * Histograms use `buckets` (upper bounds, ascending, copied; NULL for the
	 * latency default of 1us..10s). */
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
	/* The stage's pipeline name and stage name, owned by the host, valid
	 * until destroy. */
	const char *(*pipeline_name)(const struct cv_stage *stage);
	const char *(*stage_name)(const struct cv_stage *stage);
	/* True once the engine is shutting down: long-running loops end. */
	bool (*stopping)(const struct cv_stage *stage);

	/* ---- since ABI 1.1 ---- */

	/* From a plugin's `check` only: reports that the options cannot work
	 * together, as `FILE:LINE:COLUMN: error: option "NAME": MESSAGE` at the
	 * spec position of option `option` (a name of the schema, dotted like
	 * "tls.key_file"), or at the stage when the spec does not set it or
	 * `option` is NULL. Every call is one error; the stage is refused. Never
	 * put a secret's value in the message. */
	void (*check_error)(struct cv_check *check, const char *option, const char *fmt, ...)
	        __attribute__((format(printf, 3, 4)));
	/* From a plugin's `check` only: true when the spec sets `option` (or,
	 * for a secret, NAME_file), false when it has its default. */
	bool (*option_given)(const struct cv_check *check, const char *option);
	/* Takes a record the stage cannot process out of the stream for good, in
	 * one call: sources and transforms dead-letter it (counted as dropped)
	 * and drop it from the batch; sinks settle it CV_ACK_REJECTED (counted,
	 * dead-lettered). `reason` (may be NULL) is copied. A record already
	 * dropped or settled is left alone. */
	void (*reject)(struct cv_stage *stage, struct cv_batch *batch, struct cv_record *record,
	               const char *reason);
};

/* True when the host's table has `member`: needed only for members added
 * after the minor ABI a plugin was built for (a host never loads a plugin of
 * a newer minor, so members up to the plugin's own minor are always there).
 * Since ABI 1.1 (a macro: works with any host). */
#define CV_HOST_HAS(api, member)                                                                   \
	((api)->struct_size >= offsetof(struct cv_host_api, member) + sizeof((api)->member))

/* What a stage without `init` gets as its state: the host owns it and keeps
 * it valid and unchanged until the stage ends. It may grow at the end with
 * new minors. Since ABI 1.1. */
struct cv_context {
	struct cv_stage *stage;
	const struct cv_host_api *api;
	const void *config; /* the filled config struct */
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

/* Everything a plugin exports, read by the host at load time and never
 * written. Define it with CV_PLUGIN(). It grows at the end with new minors.
 *
 * Lifecycle, per stage instance: (check) -> init -> (start) ->
 * read/process/write ... -> (stop) -> (flush) -> destroy. `state` is what
 * init returned.
 *
 * Threads: init, start and destroy run on the main thread; a source's read
 * and ack on the pipeline's source thread; process, write and flush on its
 * worker thread. The callbacks of one stage never run concurrently, except
 * `stop`, which comes from another thread to wake a blocked `read`. */
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

	/* Creates the stage's state from its validated config (owned by the
	 * host until destroy returns). Returns 0 and sets *state, or a negative
	 * CV_E* and logs why. Optional since ABI 1.1: without it (and without
	 * destroy) the state is a `const struct cv_context *` the host owns. */
	int (*init)(struct cv_stage *stage, const struct cv_host_api *api, const void *config,
	            void **state);
	/* Frees everything init made. Called once, also after a failed start. */
	void (*destroy)(void *state);

	/* Source: fills `batch` (records_new through cv_batch_record_new()).
	 * Returns 0 with some records (or none, after a short wait, so the host
	 * stays responsive), CV_EOF when finished for good (records already added
	 * still flow), or another negative code on error (the host logs, counts
	 * it and retries after a pause). Should not block longer than ~100 ms.
	 * The batch may hold records from an earlier call (the host tops it up
	 * while the pipeline is busy): then add what is ready and return at
	 * once, without waiting for more. */
	int (*read)(void *state, struct cv_batch *batch);
	/* Source, optional: `batch` is settled; each record's flags tell its
	 * outcome. Called on the source's thread, between reads. The batch is
	 * the host's: touch nothing of it after returning. */
	void (*ack)(void *state, const struct cv_batch *batch);
	/* Source, optional: stop producing; may be called from another thread. */
	void (*stop)(void *state);

	/* Transform: edits the batch in place: drop records, add fields, add
	 * records. Returns 0 or negative (the batch's live records are then
	 * failed). */
	int (*process)(void *state, struct cv_batch *batch);

	/* Sink: delivers the batch's live records. See CV_PLUGIN_ASYNC_ACK. A
	 * synchronous sink may still reject single records during the call;
	 * the host settles the rest when write returns. A negative return fails
	 * every record not settled yet. */
	int (*write)(void *state, struct cv_batch *batch);
	/* Sink, optional: delivers everything pending before `deadline_ns` (a
	 * now_ns() value); called at drain. Returns 0, or CV_EAGAIN if records
	 * remain unsettled at the deadline. */
	int (*flush)(void *state, int64_t deadline_ns);

	/* Optional, any kind: called once after init when every stage of the
	 * pipeline is initialised, before data flows. */
	int (*start)(void *state);

	/* ---- since ABI 1.1 ---- */

	/* Optional, any kind: checks what the option schema cannot say (one
	 * option excludes or needs another, a URL's shape), reporting each
	 * problem with api->check_error() so that it reads FILE:LINE:COLUMN.
	 * Called by `conveyor validate` and `conveyor run` alike, after the
	 * options were validated and filled, before any init; `config` is the
	 * filled config struct (read only, the host's). Returns 0, or CV_ECONFIG
	 * when it reported errors. It must not touch the outside world: no files
	 * (specs are validated away from where they run), no network, no state.
	 * During `validate` a secret given as NAME_file is not read: its member
	 * holds a placeholder, so test secrets for presence only. */
	int (*check)(struct cv_check *check, const struct cv_host_api *api, const void *config);
};

/* Fills the first members of a descriptor. */
#define CV_PLUGIN_HEADER                                                                           \
	.abi_major = CV_ABI_MAJOR, .abi_minor = CV_ABI_MINOR,                                      \
	.struct_size = (uint32_t)sizeof(struct cv_plugin)

/* The descriptor every plugin defines, declared here so that its definition
 * has a prior declaration (clang's -Wmissing-variable-declarations). */
extern CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor;

/* Defines the plugin's descriptor, exported, with CV_PLUGIN_HEADER:
 *     CV_PLUGIN(.name = "scale", .kind = CV_KIND_TRANSFORM, .process = ...);
 * Since ABI 1.1 (a macro: the descriptor is the same). */
#define CV_PLUGIN(...)                                                                             \
	CV_PLUGIN_EXPORT const struct cv_plugin cv_plugin_descriptor = {CV_PLUGIN_HEADER,          \
	                                                                __VA_ARGS__}

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

/* The next record after `record` that is not dropped (the first with NULL),
 * or NULL at the end: for (struct cv_record *r = NULL; (r = cv_batch_next(b,
 * r));) ... Records added meanwhile are visited too. Since ABI 1.1. */
static inline struct cv_record *cv_batch_next(struct cv_batch *batch, struct cv_record *record)
{
	uint32_t i = record ? (uint32_t)(record - batch->records) + 1 : 0;
	for (; i < batch->count; i++)
		if (!(batch->records[i].flags & CV_RECORD_DROPPED))
			return &batch->records[i];
	return NULL;
}

/* Marks a record dropped (filtered), keeping `live` right. A record the
 * stage cannot process goes to api->reject() instead, which also
 * dead-letters it. */
static inline void cv_record_drop(struct cv_batch *batch, struct cv_record *record)
{
	if (!(record->flags & CV_RECORD_DROPPED)) {
		record->flags |= CV_RECORD_DROPPED;
		batch->live--;
	}
}

/* Appends a field slot to a record, or NULL when the arena is full. The
 * caller fills it; what it points to must outlive the batch. */
static inline struct cv_field *cv_record_add_field(const struct cv_host_api *api,
                                                   struct cv_batch *batch, struct cv_record *record)
{
	if (record->nfields < record->fields_cap)
		return &record->fields[record->nfields++];
	return api->record_grow_fields(batch, record);
}

/* Append a typed field keyed `key` (not copied: it must outlive the batch,
 * as a config's string does); NULL when the arena is full. */
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

/* Finds a tag by key; NULL if absent. The tag is the record's. */
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

/* Finds a field by key; NULL if absent. The field is the record's. */
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

/* The numeric value of a field: a float, or an integer converted; false
 * (and *value untouched) for a missing or non-numeric field. Since ABI 1.1. */
static inline bool cv_field_number(const struct cv_field *field, double *value)
{
	if (field && field->type == CV_FIELD_FLOAT)
		*value = field->v.f;
	else if (field && field->type == CV_FIELD_INT)
		*value = (double)field->v.i;
	else
		return false;
	return true;
}

/* The frozen structs keep their size (LP64: 64-bit Linux, macOS). */
#if defined(__LP64__)
CV_STATIC_ASSERT(sizeof(struct cv_tag) == 24, "struct cv_tag is frozen");
CV_STATIC_ASSERT(sizeof(struct cv_field) == 24, "struct cv_field is frozen");
CV_STATIC_ASSERT(sizeof(struct cv_record) == 56, "struct cv_record is frozen");
CV_STATIC_ASSERT(sizeof(struct cv_batch) == 24, "struct cv_batch's public part is frozen");
CV_STATIC_ASSERT(sizeof(struct cv_option) == 64, "struct cv_option is frozen");
CV_STATIC_ASSERT(sizeof(struct cv_string_list) == 16, "struct cv_string_list is frozen");
CV_STATIC_ASSERT(sizeof(struct cv_string_map) == 24, "struct cv_string_map is frozen");
CV_STATIC_ASSERT(sizeof(struct cv_field_name) == 16, "struct cv_field_name is frozen");
#endif

#undef CV_STATIC_ASSERT

#ifdef __cplusplus
}
#endif

#endif /* CONVEYOR_PLUGIN_H */

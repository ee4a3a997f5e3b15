/* stage_harness.h - the stage harness for the plugin unit tests of this
 * tree: <conveyor/test_harness.h> (installed for plugin authors as
 * conveyor-sdk-test) under the short names the in-tree tests use. */
#ifndef CONVEYOR_STAGE_HARNESS_H
#define CONVEYOR_STAGE_HARNESS_H

#include <conveyor/test_harness.h>

#define harness               cv_harness
#define harness_open          cv_harness_open
#define harness_api           cv_harness_api
#define harness_state         cv_harness_state
#define harness_batch         cv_harness_batch
#define harness_read          cv_harness_read
#define harness_process       cv_harness_process
#define harness_write         cv_harness_write
#define harness_acked         cv_harness_acked
#define harness_dead_lettered cv_harness_dead_lettered
#define harness_metric        cv_harness_metric
#define harness_close         cv_harness_close

#endif

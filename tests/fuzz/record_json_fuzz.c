/* record_json_fuzz.c - libFuzzer target: the JSON record decoder. Any input
 * ends in a record or a refusal with a reason, never a crash, leak or hang;
 * a record it makes encodes, and reads back the same (fuzz_record.h). */
#include "fuzz_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_decode_round_trip(CV_FORMAT_JSON, data, size);
	return 0;
}

/*
 * A zip nested kLimitsProbeDepth deep (stored members, a single byte at the
 * bottom), built by plugin_init and streamed to clamd: deeper than clamd's
 * MaxRecursion (17 by default), so a clamd with AlertExceedsMax yes reports
 * Heuristics.Limits.Exceeded.MaxRecursion, one without answers OK. Without that
 * setting clamd calls every file over one of its limits clean, and a file
 * passed with FILDES meets MaxFileSize where a stream meets StreamMaxLength.
 * Pure: tests/test_clam_parser.py checks the archive with Python's zipfile.
 */
#ifndef AVIR_CLAM_LIMITS_PROBE_H
#define AVIR_CLAM_LIMITS_PROBE_H

#include <vector>

namespace avclam {

constexpr int kLimitsProbeDepth = 64; /* about 6 KiB */

std::vector<unsigned char> nested_zip(int depth);

} // namespace avclam

#endif

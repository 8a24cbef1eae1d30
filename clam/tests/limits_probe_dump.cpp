/*
 * Writes nested_zip(depth) to stdout, for tests/test_clam_parser.py to open
 * with Python's zipfile: the probe must be a valid archive all the way down.
 */
#include <cstdio>
#include <cstdlib>

#include "../src/limits_probe.h"

int main(int argc, char **argv)
{
    int depth = argc > 1 ? std::atoi(argv[1]) : avclam::kLimitsProbeDepth;
    std::vector<unsigned char> zip = avclam::nested_zip(depth);
    return std::fwrite(zip.data(), 1, zip.size(), stdout) == zip.size() ? 0 : 1;
}

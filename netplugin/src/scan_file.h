/*
 * The file a scan reads, as both plugins must treat it: opened once, without
 * following the product into a FIFO or a device, and read through that one
 * descriptor only (never reopened by its name, which may change meanwhile).
 */
#ifndef NETPLUGIN_SCAN_FILE_H
#define NETPLUGIN_SCAN_FILE_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace netplugin {

/* Closes the file on every path out of a scan. */
struct FileDescriptor {
    int fd = -1;
    FileDescriptor() = default;
    FileDescriptor(const FileDescriptor &) = delete;
    FileDescriptor &operator=(const FileDescriptor &) = delete;
    ~FileDescriptor();
};

/*
 * Opens `filename` for a scan and gives its size. False when it cannot be
 * opened or is not a regular file, with the sentence for the product in
 * `result` (AVP_RESULT_SIZE bytes): the scan's verdict is then AVCHK_FAILED.
 */
bool open_regular_file(const char *filename, FileDescriptor &file, std::uint64_t &size,
                       char *result);

/* What a file whose size reads 0 holds. */
enum class ZeroSize {
    Empty,      /* nothing: it is clean */
    HoldsData,  /* bytes all the same (/proc, sysfs): it must be read to its end */
    Unreadable, /* a read failed (/proc/self/mem: EIO); the sentence is in `result` */
};

/*
 * For a file whose fstat size is 0: whether it holds bytes all the same. Those
 * files (/proc/self/environ, /proc/self/status) would otherwise pass as clean
 * unread. `result` (AVP_RESULT_SIZE bytes) gets the sentence for Unreadable.
 */
ZeroSize probe_zero_size(int fd, const char *filename, char *result);

/*
 * Reads up to `want` bytes of `fd` from `offset` into `out`; `got` falls short
 * only at the end of the file. False with a sentence in `error` when a read fails.
 */
bool read_at(int fd, char *out, std::size_t want, std::uint64_t offset, std::size_t &got,
             std::string &error);

} // namespace netplugin

#endif

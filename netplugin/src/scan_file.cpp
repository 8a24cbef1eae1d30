#include "scan_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "avPlugin.h"

namespace netplugin {

FileDescriptor::~FileDescriptor()
{
    if (fd >= 0)
        ::close(fd);
}

bool open_regular_file(const char *filename, FileDescriptor &file, std::uint64_t &size,
                       char *result)
{
    /* O_NONBLOCK: opening a FIFO without a writer would block this worker for
       ever; it is refused below as not a regular file. Reads of regular files
       ignore the flag. */
    file.fd = ::open(filename, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (file.fd < 0) {
        avc_format(result, AVP_RESULT_SIZE, "cannot open %s: %s", filename, std::strerror(errno));
        return false;
    }
    struct stat st;
    if (::fstat(file.fd, &st) != 0) {
        avc_format(result, AVP_RESULT_SIZE, "cannot stat %s: %s", filename, std::strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        avc_format(result, AVP_RESULT_SIZE, "%s is not a regular file", filename);
        return false;
    }
    size = static_cast<std::uint64_t>(st.st_size);
    return true;
}

ZeroSize probe_zero_size(int fd, const char *filename, char *result)
{
    char byte;
    std::size_t got = 0;
    std::string error;
    if (!read_at(fd, &byte, 1, 0, got, error)) {
        avc_format(result, AVP_RESULT_SIZE, "cannot read %s (its size reads 0): %s", filename,
                   error.c_str());
        return ZeroSize::Unreadable;
    }
    return got == 0 ? ZeroSize::Empty : ZeroSize::HoldsData;
}

bool read_at(int fd, char *out, std::size_t want, std::uint64_t offset, std::size_t &got,
             std::string &error)
{
    got = 0;
    while (got < want) {
        ssize_t n = ::pread(fd, out + got, want - got, static_cast<off_t>(offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            error = std::strerror(errno);
            return false;
        }
        if (n == 0)
            break; /* the file shrank while we read it: send what there is */
        got += static_cast<std::size_t>(n);
    }
    return true;
}

} // namespace netplugin

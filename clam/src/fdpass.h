/*
 * FdPass: whether a scan hands clamd the open file (FILDES, descriptor passed
 * over the UNIX socket with SCM_RIGHTS) or streams its bytes (INSTREAM). Pure
 * functions of the option's text and the situation, unit-tested on the build
 * machine.
 */
#ifndef AVIR_CLAM_FDPASS_H
#define AVIR_CLAM_FDPASS_H

#include <string_view>

namespace avclam {

enum class FdPass {
    Auto, /* FILDES over a UNIX socket; INSTREAM over TCP or once clamd refused a descriptor */
    On,   /* FILDES only: a refused descriptor is a FAILED scan, never a silent stream */
    Off,  /* INSTREAM always */
};

enum class ScanMethod { Instream,
                        Fildes };

/* "auto", "on" or "off", in any case; false for anything else. */
bool parse_fd_pass(std::string_view text, FdPass &out);

const char *fd_pass_name(FdPass mode);

/*
 * How to send the next file. `unix_socket`: the session is on clamd's UNIX
 * socket (only there can a descriptor travel). `refused`: clamd already
 * refused a descriptor since this worker's options were loaded.
 */
ScanMethod choose_method(FdPass mode, bool unix_socket, bool refused);

/* Empty when `mode` can work with this transport; else why not, for plugin_init's error. */
const char *fd_pass_conflict(FdPass mode, bool unix_socket);

} // namespace avclam

#endif

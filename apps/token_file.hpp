#pragma once

// A bearer token read from a file (--token-file of cyme-branch and cyme),
// so that it is not on a command line, where `ps` shows it to everyone.

#include <string>

namespace cyme {

/// Why `token` cannot be a bearer token (it becomes a header line:
/// control characters would split it), empty when it can.
std::string token_problem(const std::string& token);

/// Reads the token in the file at `path` into `token`: the file's text
/// without one trailing newline. Returns why it cannot be used, empty when
/// it can: the file must be a regular file that neither its group nor
/// others may read or write (mode 0600 or stricter), hold at most 4 KiB,
/// and its token must be neither empty nor hold control characters.
std::string read_token_file(const std::string& path, std::string& token);

/// Why the private key file at `path` (--http-key) is no secret: every
/// user may read or change it (mode bits for others, as ssh and PostgreSQL
/// refuse). Empty when it is kept from them, or cannot be examined (its
/// loading then says why).
std::string key_file_problem(const std::string& path);

} // namespace cyme

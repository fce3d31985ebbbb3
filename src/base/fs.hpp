// carrier base: file system helpers shared by the spool and the Maildir transport.
#pragma once

namespace carrier {

// renameat2(RENAME_NOREPLACE): never replaces an existing target (EEXIST instead). Falls back
// to link + unlink on file systems without RENAME_NOREPLACE (link fails with EEXIST as well).
// Returns 0 or -1 with errno set.
int rename_noreplace(int from_dir, const char* from, int to_dir, const char* to);

}  // namespace carrier

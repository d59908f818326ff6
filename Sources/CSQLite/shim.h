#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H
#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro casting -1 to a function pointer, which Swift cannot
// import. These typed wrappers let Swift bind text and blobs that SQLite copies
// before the call returns, without an unsafeBitCast on the Swift side.
static inline int csqlite_bind_text_transient(sqlite3_stmt *stmt, int index, const char *text, int bytes) {
    return sqlite3_bind_text(stmt, index, text, bytes, SQLITE_TRANSIENT);
}

static inline int csqlite_bind_blob_transient(sqlite3_stmt *stmt, int index, const void *blob, int bytes) {
    // A zero-length blob must still be a blob, not NULL: sqlite3_bind_zeroblob does that.
    if (bytes == 0) { return sqlite3_bind_zeroblob(stmt, index, 0); }
    return sqlite3_bind_blob(stmt, index, blob, bytes, SQLITE_TRANSIENT);
}
#endif

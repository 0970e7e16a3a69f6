// sqlite3_config is variadic and does not import into Swift: this typed wrapper does.
#ifndef CREDITMETER_CSQLITE_SHIM_H
#define CREDITMETER_CSQLITE_SHIM_H

#include <sqlite3.h>

/// Turns off SQLite's memory statistics, which take a global mutex around every allocation and free.
/// Only valid before the library is initialised (the first open): later it returns SQLITE_MISUSE.
static inline int cm_sqlite_config_memstatus(int on) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, on);
}

#endif

#ifndef CLIBPQ_SHIM_H
#define CLIBPQ_SHIM_H
// Debian installs libpq-fe.h under /usr/include/postgresql: pkg-config libpq supplies that path.
#include <libpq-fe.h>
#endif

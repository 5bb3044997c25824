/* version.h: the version printed by --version and GET /version (the extension's). */
#ifndef FE_VERSION_H
#define FE_VERSION_H
#ifndef MDM_FRONTEND_VERSION
#define MDM_FRONTEND_VERSION "unknown"
#endif
#endif

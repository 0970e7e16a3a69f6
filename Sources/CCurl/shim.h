// curl_easy_setopt and curl_easy_getinfo are variadic and do not import into Swift: these typed
// wrappers do. The option's type must match what libcurl reads for it (see each option's man page).
#ifndef CREDITMETER_CCURL_SHIM_H
#define CREDITMETER_CCURL_SHIM_H

#include <curl/curl.h>

/// The signature libcurl calls for CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION.
typedef size_t (*cm_curl_data_callback)(char *data, size_t size, size_t nmemb, void *userdata);
/// The signature libcurl calls for CURLOPT_XFERINFOFUNCTION; non-zero aborts the transfer.
typedef int (*cm_curl_xferinfo_callback)(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                                         curl_off_t ultotal, curl_off_t ulnow);

static inline CURLcode cm_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode cm_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

/// libcurl copies string options (except CURLOPT_POSTFIELDS, which is why callers use COPYPOSTFIELDS).
static inline CURLcode cm_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode cm_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode cm_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode cm_easy_setopt_write_callback(CURL *handle, cm_curl_data_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, callback);
}

static inline CURLcode cm_easy_setopt_header_callback(CURL *handle, cm_curl_data_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, callback);
}

static inline CURLcode cm_easy_setopt_xferinfo_callback(CURL *handle, cm_curl_xferinfo_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

static inline CURLcode cm_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

#endif

/* The common DNSBL query answered in C: a batch of UDP datagrams read with recvmmsg,
 * the IPv4 A (and negative A/TXT) queries answered here, the answers sent with
 * sendmmsg, and every other datagram handed back to Python (responder.py), which
 * answers it exactly as before.  Optional: without this module the server runs the
 * pure-Python path, and tests check both give the same bytes.
 *
 * What is answered here is the subset of DnsblResponder.udp_fast_path's IPv4 case that
 * needs nothing but the exact-address arrays: a standard query (QR=0, opcode 0), one
 * question, no records but at most one plain OPT (version 0), four decimal octet labels
 * under ip.<apex> (any case), type A or TXT, class IN; an exact listing (A only) or no
 * listing at all where no CIDR block may apply (the /20 filter), not the four
 * one-character labels case (also an IPv6 prefix).  Everything else goes to Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define BATCH 64
#define PKT 1024
#define OUT 600

typedef struct {
    Py_buffer keys, vals, hint;
    int have_hint;
    Py_ssize_t nkeys;
    long long drift;
    const unsigned char *units;
    Py_ssize_t nunits;
    const unsigned char *suffix;
    Py_ssize_t nsuffix;
    PyObject *a_records; /* list of bytes */
    const unsigned char *neg;
    Py_ssize_t nneg;
    const unsigned char *opt, *opt_do;
    Py_ssize_t nopt, nopt_do;
    unsigned long long now_ms;
    PyObject *txt_prefixes; /* list of bytes: "reason text; lookup url" per reason */
    unsigned ttl;
    const unsigned char *dbl_suffix;
    Py_ssize_t ndbl_suffix;
    PyObject *domains;  /* dict bytes -> packed int */
    PyObject *suffixes; /* dict bytes -> count: names with listed names below */
} Ctx;

static void ctx_release(Ctx *c) {
    if (c->keys.obj) PyBuffer_Release(&c->keys);
    if (c->vals.obj) PyBuffer_Release(&c->vals);
    if (c->hint.obj) PyBuffer_Release(&c->hint);
}

/* ctx = (keys array('I'), vals array('Q'), hint array('I'), drift, units bytearray|None,
 *        ip_suffix bytes, a_records list[bytes], soa_neg_tail bytes, opt bytes, opt_do bytes,
 *        txt_prefixes list[bytes], ttl, dbl_suffix bytes, domains dict, suffixes dict) */
static int ctx_load(Ctx *c, PyObject *t, unsigned long long now_ms) {
    memset(c, 0, sizeof(*c));
    PyObject *keys, *vals, *hint, *units, *suffix, *a_records, *neg, *opt, *opt_do;
    PyObject *txt_prefixes, *dbl_suffix, *domains, *suffixes;
    long long drift;
    unsigned int ttl;
    if (!PyArg_ParseTuple(t, "OOOLOSO!SSSO!ISO!O!", &keys, &vals, &hint, &drift, &units, &suffix,
                          &PyList_Type, &a_records, &neg, &opt, &opt_do, &PyList_Type,
                          &txt_prefixes, &ttl, &dbl_suffix, &PyDict_Type, &domains, &PyDict_Type,
                          &suffixes))
        return -1;
    c->txt_prefixes = txt_prefixes;
    c->ttl = ttl;
    c->dbl_suffix = (const unsigned char *)PyBytes_AS_STRING(dbl_suffix);
    c->ndbl_suffix = PyBytes_GET_SIZE(dbl_suffix);
    c->domains = domains;
    c->suffixes = suffixes;
    if (PyObject_GetBuffer(keys, &c->keys, PyBUF_SIMPLE | PyBUF_FORMAT) < 0) goto fail;
    if (PyObject_GetBuffer(vals, &c->vals, PyBUF_SIMPLE | PyBUF_FORMAT) < 0) goto fail;
    if (PyObject_GetBuffer(hint, &c->hint, PyBUF_SIMPLE | PyBUF_FORMAT) < 0) goto fail;
    if (c->keys.itemsize != 4 || c->vals.itemsize != 8 || c->hint.itemsize != 4) {
        PyErr_SetString(PyExc_TypeError, "keys array('I'), vals array('Q'), hint array('I')");
        goto fail;
    }
    c->nkeys = c->keys.len / 4;
    if (c->vals.len / 8 != c->nkeys) {
        PyErr_SetString(PyExc_ValueError, "keys and vals differ in length");
        goto fail;
    }
    c->have_hint = c->hint.len / 4 == 65537;
    c->drift = drift;
    if (units != Py_None) {
        if (!PyByteArray_Check(units)) {
            PyErr_SetString(PyExc_TypeError, "units must be a bytearray or None");
            goto fail;
        }
        c->units = (const unsigned char *)PyByteArray_AS_STRING(units);
        c->nunits = PyByteArray_GET_SIZE(units);
    }
    c->suffix = (const unsigned char *)PyBytes_AS_STRING(suffix);
    c->nsuffix = PyBytes_GET_SIZE(suffix);
    c->a_records = a_records;
    c->neg = (const unsigned char *)PyBytes_AS_STRING(neg);
    c->nneg = PyBytes_GET_SIZE(neg);
    c->opt = (const unsigned char *)PyBytes_AS_STRING(opt);
    c->nopt = PyBytes_GET_SIZE(opt);
    c->opt_do = (const unsigned char *)PyBytes_AS_STRING(opt_do);
    c->nopt_do = PyBytes_GET_SIZE(opt_do);
    c->now_ms = now_ms;
    return 0;
fail:
    ctx_release(c);
    return -1;
}

static inline int octet(const unsigned char *p, Py_ssize_t len, unsigned *out) {
    if (len < 1 || len > 3) return -1;
    unsigned v = 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    if (len > 1 && p[0] == '0') return -1; /* leading zero: Python decides */
    if (v > 255) return -1;
    *out = v;
    return 0;
}

/* The record of a TXT answer: pointer to the question, the tail, one string of the reason
 * prefix and the key.  Its length, or 0 when it does not fit one string (Python). */
static Py_ssize_t txt_record(const Ctx *c, int reason, const char *key, Py_ssize_t nkey,
                             unsigned char *w, Py_ssize_t room) {
    if (reason >= PyList_GET_SIZE(c->txt_prefixes)) return 0;
    PyObject *pre = PyList_GET_ITEM(c->txt_prefixes, reason);
    if (!PyBytes_Check(pre)) return 0;
    Py_ssize_t np = PyBytes_GET_SIZE(pre), n = np + nkey;
    if (n > 255 || 2 + 10 + 1 + n > room) return 0;
    w[0] = 0xC0; w[1] = 0x0C;
    w[2] = 0; w[3] = 16; w[4] = 0; w[5] = 1;
    w[6] = c->ttl >> 24; w[7] = c->ttl >> 16; w[8] = c->ttl >> 8; w[9] = c->ttl;
    w[10] = (n + 1) >> 8; w[11] = (n + 1) & 0xFF;
    w[12] = (unsigned char)n;
    memcpy(w + 13, PyBytes_AS_STRING(pre), np);
    memcpy(w + 13 + np, key, nkey);
    return 13 + n;
}

/* (reason, listed suffix) of a lower-case domain: itself or its longest listed suffix
 * (DnsblZone.lookup_domain); -1 when not listed, -2 on an error (Python answers). */
static int lookup_domain(const Ctx *c, const char *name, Py_ssize_t n, Py_ssize_t *suffix_at) {
    if (n == 7 && memcmp(name, "invalid", 7) == 0) return -1; /* RFC 5782 §5 test point */
    Py_ssize_t pos = 0;
    for (;;) {
        PyObject *key = PyBytes_FromStringAndSize(name + pos, n - pos);
        if (!key) { PyErr_Clear(); return -2; }
        PyObject *packed = PyDict_GetItemWithError(c->domains, key);
        Py_DECREF(key);
        if (packed) {
            unsigned long long v = PyLong_AsUnsignedLongLong(packed);
            if (v == (unsigned long long)-1 && PyErr_Occurred()) { PyErr_Clear(); return -2; }
            if ((v >> 8) > c->now_ms) { *suffix_at = pos; return (int)(v & 0xFF); }
        } else if (PyErr_Occurred()) {
            PyErr_Clear();
            return -2;
        }
        const char *dot = memchr(name + pos, '.', n - pos);
        if (!dot) return -1;
        pos = dot - name + 1;
    }
}

/* The rest of a question whose QTYPE starts at d[t] (the caller checked that 4 bytes are
 * there): QTYPE A or TXT (*txt 0 or 1), QCLASS IN, then the packet's end or one EDNS0 OPT
 * record (RFC 6891) that ends it, whose DO bit picks the OPT to echo (*opt, *nopt; none
 * without one).  Returns the question's end, or 0 for anything the fast path does not take. */
static inline Py_ssize_t question_tail(const Ctx *c, const unsigned char *d, Py_ssize_t n,
                                       Py_ssize_t t, int ar, int *txt,
                                       const unsigned char **opt, Py_ssize_t *nopt) {
    if (d[t] == 0 && d[t + 1] == 1) *txt = 0;
    else if (d[t] == 0 && d[t + 1] == 16) *txt = 1;
    else return 0;
    if (d[t + 2] != 0 || d[t + 3] != 1) return 0;
    Py_ssize_t qend = t + 4;
    *opt = NULL;
    *nopt = 0;
    if (!ar) {
        if (qend != n) return 0;
    } else {
        if (n < qend + 11 || d[qend] || d[qend + 1] || d[qend + 2] != 0x29 || d[qend + 5] || d[qend + 6])
            return 0;
        if (qend + 11 + ((Py_ssize_t)d[qend + 9] << 8 | d[qend + 10]) != n) return 0;
        if (d[qend + 7] & 0x80) { *opt = c->opt_do; *nopt = c->nopt_do; }
        else { *opt = c->opt; *nopt = c->nopt; }
    }
    return qend;
}

/* The answer to one datagram in out (its length), or 0: Python answers it.
 * *rcode_out gets the rcode of an answer. */
static Py_ssize_t answer_domain(const Ctx *c, const unsigned char *d, Py_ssize_t n,
                                unsigned char *out, int *rcode_out);

static Py_ssize_t answer(const Ctx *c, const unsigned char *d, Py_ssize_t n, unsigned char *out,
                         int *rcode_out) {
    if (n < 12 + 8 + 5 || d[2] > 0x07 || d[4] || d[5] != 1 || d[6] || d[7] || d[8] || d[9] || d[10]
        || d[11] > 1)
        return 0;
    int ar = d[11];
    Py_ssize_t p = 12;
    unsigned o[4];
    for (int i = 0; i < 4; i++) {
        Py_ssize_t len = d[p];
        if (p + 1 + len > n || octet(d + p + 1, len, &o[i]) < 0)
            return answer_domain(c, d, n, out, rcode_out);
        p += 1 + len;
    }
    Py_ssize_t start = p;
    if (p + c->nsuffix + 4 > n) return 0;
    for (Py_ssize_t i = 0; i < c->nsuffix; i++) {
        unsigned char ch = d[p + i];
        if (ch >= 'A' && ch <= 'Z') ch += 32;
        if (ch != c->suffix[i]) return answer_domain(c, d, n, out, rcode_out);
    }
    p += c->nsuffix;
    int txt;
    const unsigned char *opt;
    Py_ssize_t nopt;
    Py_ssize_t qend = question_tail(c, d, n, p, ar, &txt, &opt, &nopt);
    if (!qend) return 0;
    unsigned address = o[3] << 24 | o[2] << 16 | o[1] << 8 | o[0];
    int hit = -1;
    if (address != 0x7F000001u) {
        const unsigned *keys = (const unsigned *)c->keys.buf;
        const unsigned long long *vals = (const unsigned long long *)c->vals.buf;
        Py_ssize_t lo = 0, hi = c->nkeys;
        if (c->have_hint) {
            const unsigned *hint = (const unsigned *)c->hint.buf;
            unsigned top = address >> 16;
            long long l = (long long)hint[top] - c->drift, h = (long long)hint[top + 1] + c->drift;
            lo = l > 0 ? (Py_ssize_t)l : 0;
            hi = h < c->nkeys ? (Py_ssize_t)h : c->nkeys;
        }
        while (lo < hi) { /* bisect_left */
            Py_ssize_t mid = (lo + hi) / 2;
            if (keys[mid] < address) lo = mid + 1;
            else hi = mid;
        }
        if (lo < c->nkeys && keys[lo] == address && (vals[lo] >> 8) > c->now_ms)
            hit = (int)(vals[lo] & 0xFF);
        else if (c->units && (Py_ssize_t)(address >> 12) < c->nunits && c->units[address >> 12])
            return 0; /* a CIDR block may cover it */
    }
    const unsigned char *rec;
    Py_ssize_t nrec;
    unsigned char negbuf[2] = {0, 0};
    unsigned char txtbuf[300];
    int an, rcode;
    if (hit >= 0 && txt) {
        char key[16];
        int nkey = snprintf(key, sizeof key, "%u.%u.%u.%u", o[3], o[2], o[1], o[0]);
        nrec = txt_record(c, hit, key, nkey, txtbuf, sizeof txtbuf);
        if (!nrec) return 0;
        rec = txtbuf;
        an = 1;
        rcode = 0;
    } else if (hit >= 0) {
        if (hit >= PyList_GET_SIZE(c->a_records)) return 0;
        PyObject *r = PyList_GET_ITEM(c->a_records, hit);
        if (!PyBytes_Check(r)) return 0;
        rec = (const unsigned char *)PyBytes_AS_STRING(r);
        nrec = PyBytes_GET_SIZE(r);
        an = 1;
        rcode = 0;
    } else {
        Py_ssize_t zone = start; /* offset of ip.<apex> in the message */
        if (zone == 20) return 0; /* four one-character labels: also an IPv6 prefix */
        negbuf[0] = 0xC0 | (unsigned char)(zone >> 8);
        negbuf[1] = (unsigned char)zone;
        rec = NULL;
        nrec = 2 + c->nneg;
        an = 0;
        rcode = 3;
    }
    Py_ssize_t total = 12 + (qend - 12) + nrec + nopt;
    if (total > 512) return 0; /* Python truncates */
    unsigned flags = 0x8000 | 0x0400 | (d[2] & 0x01) << 8 | (d[3] & 0x10) | rcode;
    out[0] = d[0];
    out[1] = d[1];
    out[2] = flags >> 8;
    out[3] = flags & 0xFF;
    out[4] = 0; out[5] = 1;
    out[6] = 0; out[7] = an;
    out[8] = 0; out[9] = 1 - an;
    out[10] = 0; out[11] = ar;
    Py_ssize_t w = 12;
    memcpy(out + w, d + 12, qend - 12);
    w += qend - 12;
    if (rec) {
        memcpy(out + w, rec, nrec);
        w += nrec;
    } else {
        out[w] = negbuf[0];
        out[w + 1] = negbuf[1];
        memcpy(out + w + 2, c->neg, c->nneg);
        w += 2 + c->nneg;
    }
    if (nopt) {
        memcpy(out + w, opt, nopt);
        w += nopt;
    }
    *rcode_out = rcode;
    return w;
}

/* DnsblResponder.udp_fast_path's dbl.<apex> case. */
static Py_ssize_t answer_domain(const Ctx *c, const unsigned char *d, Py_ssize_t n,
                                unsigned char *out, int *rcode_out) {
    int ar = d[11];
    const unsigned char *z = memchr(d + 12, 0, n - 12);
    if (!z) return 0;
    Py_ssize_t end = z - d;
    if (end + 5 > n || end - 11 > 255) return 0;
    int txt;
    const unsigned char *opt;
    Py_ssize_t nopt;
    Py_ssize_t qend = question_tail(c, d, n, end + 1, ar, &txt, &opt, &nopt);
    if (!qend) return 0;
    Py_ssize_t start = end + 1 - c->ndbl_suffix;
    if (start <= 12) return 0;
    for (Py_ssize_t i = 0; i < c->ndbl_suffix; i++) {
        unsigned char ch = d[start + i];
        if (ch >= 'A' && ch <= 'Z') ch += 32;
        if (ch != c->dbl_suffix[i]) return 0;
    }
    char name[256];
    Py_ssize_t nn = 0, p = 12;
    while (p < start) {
        Py_ssize_t len = d[p];
        if (len == 0 || len > 63 || p + 1 + len > start) return 0;
        if (nn) name[nn++] = '.';
        for (Py_ssize_t i = 0; i < len; i++) {
            unsigned char ch = d[p + 1 + i];
            if (ch == '.' || ch == '/' || ch >= 0x80) return 0; /* Python's corner cases */
            if (ch >= 'A' && ch <= 'Z') ch += 32;
            name[nn++] = (char)ch;
        }
        p += 1 + len;
    }
    if (p != start || nn == 0) return 0;
    Py_ssize_t at = 0;
    int hit = lookup_domain(c, name, nn, &at);
    if (hit == -2) return 0;
    unsigned char recbuf[300];
    Py_ssize_t nrec;
    int an, rcode;
    if (hit >= 0) {
        if (txt) {
            nrec = txt_record(c, hit, name + at, nn - at, recbuf, sizeof recbuf);
            if (!nrec) return 0;
        } else {
            if (hit >= PyList_GET_SIZE(c->a_records)) return 0;
            PyObject *r = PyList_GET_ITEM(c->a_records, hit);
            if (!PyBytes_Check(r) || PyBytes_GET_SIZE(r) > (Py_ssize_t)sizeof recbuf) return 0;
            nrec = PyBytes_GET_SIZE(r);
            memcpy(recbuf, PyBytes_AS_STRING(r), nrec);
        }
        an = 1;
        rcode = 0;
    } else {
        PyObject *key = PyBytes_FromStringAndSize(name, nn);
        if (!key) { PyErr_Clear(); return 0; }
        int children = PyDict_Contains(c->suffixes, key);
        Py_DECREF(key);
        if (children < 0) { PyErr_Clear(); return 0; }
        if (2 + c->nneg > (Py_ssize_t)sizeof recbuf) return 0;
        recbuf[0] = 0xC0 | (unsigned char)(start >> 8);
        recbuf[1] = (unsigned char)start;
        memcpy(recbuf + 2, c->neg, c->nneg);
        nrec = 2 + c->nneg;
        an = 0;
        rcode = children ? 0 : 3;
    }
    Py_ssize_t total = qend + nrec + nopt;
    if (total > 512) return 0;
    unsigned flags = 0x8000 | 0x0400 | (d[2] & 0x01) << 8 | (d[3] & 0x10) | rcode;
    out[0] = d[0]; out[1] = d[1];
    out[2] = flags >> 8; out[3] = flags & 0xFF;
    out[4] = 0; out[5] = 1; out[6] = 0; out[7] = an; out[8] = 0; out[9] = 1 - an;
    out[10] = 0; out[11] = ar;
    memcpy(out + 12, d + 12, qend - 12);
    memcpy(out + qend, recbuf, nrec);
    if (nopt) memcpy(out + qend + nrec, opt, nopt);
    *rcode_out = rcode;
    return total;
}

static PyObject *addr_tuple(const struct sockaddr_storage *ss) {
    char host[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
        return Py_BuildValue("(si)", host, ntohs(s4->sin_port));
    }
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
    return Py_BuildValue("(siII)", host, ntohs(s6->sin6_port), ntohl(s6->sin6_flowinfo),
                         s6->sin6_scope_id);
}

/* answer(data, now_ms, ctx) -> bytes | None: one datagram, for tests. */
static PyObject *py_answer(PyObject *self, PyObject *args) {
    Py_buffer data;
    unsigned long long now_ms;
    PyObject *t;
    if (!PyArg_ParseTuple(args, "y*KO!", &data, &now_ms, &PyTuple_Type, &t)) return NULL;
    Ctx c;
    if (ctx_load(&c, t, now_ms) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    unsigned char out[OUT];
    int rcode = 0;
    Py_ssize_t w = data.len <= PKT ? answer(&c, data.buf, data.len, out, &rcode) : 0;
    ctx_release(&c);
    PyBuffer_Release(&data);
    if (!w) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)out, w);
}

/* serve(fd, limit, now_ms, ctx) -> (rest, answers_by_rcode, send_failures)
 * Reads up to ``limit`` datagrams, answers what it can, returns the rest for Python as a
 * list of (datagram, address), the answers sent here by rcode (16 ints) and how many
 * answers could not be sent. */
static PyObject *py_serve(PyObject *self, PyObject *args) {
    int fd, limit;
    unsigned long long now_ms;
    PyObject *t;
    if (!PyArg_ParseTuple(args, "iiKO!", &fd, &limit, &now_ms, &PyTuple_Type, &t))
        return NULL;
    Ctx c;
    if (ctx_load(&c, t, now_ms) < 0) return NULL;
    PyObject *rest = PyList_New(0);
    if (!rest) { ctx_release(&c); return NULL; }
    static unsigned char in[BATCH][PKT];
    static unsigned char outb[BATCH][OUT];
    static struct sockaddr_storage addrs[BATCH];
    struct mmsghdr rmsg[BATCH], smsg[BATCH];
    struct iovec riov[BATCH], siov[BATCH];
    long answered[16] = {0};
    long failed = 0;
    int done = 0;
    while (done < limit) {
        int want = limit - done < BATCH ? limit - done : BATCH;
        for (int i = 0; i < want; i++) {
            riov[i].iov_base = in[i];
            riov[i].iov_len = PKT;
            memset(&rmsg[i].msg_hdr, 0, sizeof(rmsg[i].msg_hdr));
            rmsg[i].msg_hdr.msg_name = &addrs[i];
            rmsg[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
            rmsg[i].msg_hdr.msg_iov = &riov[i];
            rmsg[i].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(fd, rmsg, want, MSG_DONTWAIT, NULL);
        if (got <= 0) break;
        done += got;
        int ns = 0;
        for (int i = 0; i < got; i++) {
            Py_ssize_t n = rmsg[i].msg_len;
            int rcode = 0;
            Py_ssize_t w = 0;
            if (!(rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) && n <= PKT)
                w = answer(&c, in[i], n, outb[ns], &rcode);
            if (w) {
                siov[ns].iov_base = outb[ns];
                siov[ns].iov_len = w;
                memset(&smsg[ns].msg_hdr, 0, sizeof(smsg[ns].msg_hdr));
                smsg[ns].msg_hdr.msg_name = &addrs[i];
                smsg[ns].msg_hdr.msg_namelen = rmsg[i].msg_hdr.msg_namelen;
                smsg[ns].msg_hdr.msg_iov = &siov[ns];
                smsg[ns].msg_hdr.msg_iovlen = 1;
                answered[rcode]++;
                ns++;
                continue;
            }
            if (rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) continue; /* over 1 KiB: not a query we read */
            PyObject *addr = addr_tuple(&addrs[i]);
            PyObject *data = PyBytes_FromStringAndSize((const char *)in[i], n);
            PyObject *pair = (addr && data) ? PyTuple_Pack(2, data, addr) : NULL;
            Py_XDECREF(addr);
            Py_XDECREF(data);
            if (!pair || PyList_Append(rest, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(rest);
                ctx_release(&c);
                return NULL;
            }
            Py_DECREF(pair);
        }
        int sent = 0;
        while (sent < ns) {
            int r = sendmmsg(fd, smsg + sent, ns - sent, MSG_DONTWAIT);
            if (r <= 0) {
                /* full socket buffer or an unreachable client: skip that one (UDP may drop) */
                failed++;
                for (int k = 0; k < 16; k++) { /* undo its count */
                    if (answered[k] && (outb[sent][3] & 0xF) == k) { answered[k]--; break; }
                }
                sent++;
                continue;
            }
            sent += r;
        }
        if (got < want) break;
    }
    ctx_release(&c);
    return Py_BuildValue("(N(llllllllllllllll)l)", rest, answered[0], answered[1], answered[2],
                         answered[3], answered[4], answered[5], answered[6], answered[7],
                         answered[8], answered[9], answered[10], answered[11], answered[12],
                         answered[13], answered[14], answered[15], failed);
}

static PyMethodDef methods[] = {
    {"answer", py_answer, METH_VARARGS, "answer(data, now_ms, ctx) -> bytes | None"},
    {"serve", py_serve, METH_VARARGS,
     "serve(fd, limit, now_ms, ctx) -> (datagrams left for Python, answers by rcode, send failures)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }

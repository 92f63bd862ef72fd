/*
 * The keys that spread one topology over several nodes: `hosts:`,
 * `keys_dir:`, `insecure:` and each stage's `host:` (docs/topology.md,
 * docs/deploy.md "Running across hosts"). Only names, addresses, ports and
 * public keys are read here; a node's secret key is read by the run that
 * needs it.
 */
#include "topology_parse.h"

#include "curve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const s_host_keys[] = {"address", "port", "key",
                                          "key_file", NULL};

static void s_parse_key(sl_topo_parse_t *p, sl_topo_host_t *h,
                        const sl_config_t *key, const sl_config_t *file)
{
    char buf[96], err[512];
    if (key && file) {
        sl__topo_err(p, file, "host '%s': give 'key' or 'key_file', not both",
                     h->name);
        return;
    }
    if (key) {
        char what[96];
        snprintf(what, sizeof(what), "key of host '%s'", h->name);
        if (sl_config_type(key) != SL_CONFIG_STRING) {
            sl__topo_err(p, key, "host '%s': 'key' must be a Z85 public key "
                         "(40 characters, see `sluice keygen`), got %s",
                         h->name, sl__topo_what(key, buf, sizeof(buf)));
            return;
        }
        if (sl__curve_check_key(sl_config_str(key), what, err,
                                sizeof(err)) != 0) {
            sl__topo_err(p, key, "%s", err);
            return;
        }
        memcpy(h->key, sl_config_str(key), SL_CURVE_KEY_LEN + 1);
        return;
    }
    if (!file)
        return;
    if (sl_config_type(file) != SL_CONFIG_STRING || !sl_config_str(file)[0]) {
        sl__topo_err(p, file, "host '%s': 'key_file' must be the path of a "
                     "NAME.pub file, got %s", h->name,
                     sl__topo_what(file, buf, sizeof(buf)));
        return;
    }
    char *path = sl__topo_path(p, sl_config_str(file), "");
    if (!path) {
        p->oom = true;
        return;
    }
    if (sl__curve_load_public(path, h->key, NULL, err, sizeof(err)) != 0) {
        h->key[0] = '\0';
        sl__topo_err(p, file, "host '%s': key_file: %s", h->name, err);
    }
    free(path);
}

static void s_parse_host(sl_topo_parse_t *p, const char *name,
                         const sl_config_t *v)
{
    sl_topology_t *t = p->t;
    char buf[96], err[256];
    if (sl__curve_check_name(name, err, sizeof(err)) != 0) {
        sl__topo_err(p, v, "host '%s': %s", name, err);
        return;
    }
    if (sl_config_type(v) != SL_CONFIG_MAP) {
        sl__topo_err(p, v, "host '%s' must be a map such as {address: "
                     "10.0.0.2, key_file: keys/%s.pub}, got %s", name, name,
                     sl__topo_what(v, buf, sizeof(buf)));
        return;
    }
    char where[96];
    snprintf(where, sizeof(where), "in host '%s'", name);
    sl__topo_check_keys(p, v, s_host_keys, where);
    sl_topo_host_t *h = &t->hosts[t->n_hosts];
    const sl_config_t *addr = sl_config_get(v, "address");
    if (!addr) {
        sl__topo_err(p, v, "host '%s': missing required key 'address'", name);
        return;
    }
    if (sl_config_type(addr) != SL_CONFIG_STRING || !sl_config_str(addr)[0] ||
        strpbrk(sl_config_str(addr), "/ ")) {
        sl__topo_err(p, addr, "host '%s': 'address' must be a host name or "
                     "IP address, got %s", name,
                     sl__topo_what(addr, buf, sizeof(buf)));
        return;
    }
    h->port = SL_TOPO_DEFAULT_PORT;
    const sl_config_t *port = sl_config_get(v, "port");
    if (port) {
        int64_t n;
        if (sl_config_int(port, &n) != 0 || n < 1 || n > 65535) {
            sl__topo_err(p, port, "host '%s': 'port' must be a TCP port from "
                         "1 to 65535, got %s", name,
                         sl__topo_what(port, buf, sizeof(buf)));
            return;
        }
        h->port = (uint32_t)n;
    }
    if (!(h->name = strdup(name)) ||
        !(h->address = strdup(sl_config_str(addr)))) {
        free(h->name);
        h->name = NULL;
        p->oom = true;
        return;
    }
    const sl_config_t *key = sl_config_get(v, "key");
    const sl_config_t *file = sl_config_get(v, "key_file");
    h->key_node = key ? key : file; /* a bad one is reported once, here */
    s_parse_key(p, h, key, file);
    h->node = v;
    h->port_node = port ? port : v;
    t->n_hosts++;
}

void sl__topo_parse_hosts(sl_topo_parse_t *p, const sl_config_t *root)
{
    sl_topology_t *t = p->t;
    char buf[96];
    const sl_config_t *ins = sl_config_get(root, "insecure");
    if (ins) {
        int b;
        if (sl_config_bool(ins, &b) != 0)
            sl__topo_err(p, ins, "'insecure' must be true or false, got %s",
                         sl__topo_what(ins, buf, sizeof(buf)));
        else
            t->insecure = b;
    }
    const sl_config_t *kd = sl_config_get(root, "keys_dir");
    if (kd) {
        if (sl_config_type(kd) != SL_CONFIG_STRING || !sl_config_str(kd)[0])
            sl__topo_err(p, kd, "'keys_dir' must be a directory path, got %s",
                         sl__topo_what(kd, buf, sizeof(buf)));
        else if (!(t->keys_dir = sl__topo_path(p, sl_config_str(kd), "")))
            p->oom = true;
    } else if (!(t->keys_dir = strdup(sl__config_doc_dir(t->doc)))) {
        p->oom = true;
    }
    const sl_config_t *pt = sl_config_get(root, "peer_timeout");
    t->peer_timeout_ms = SL_TOPO_PEER_TIMEOUT_MS;
    if (pt && sl__topo_get_duration(p, pt, "peer_timeout", "topology",
                                    &t->peer_timeout_ms) &&
        t->peer_timeout_ms < SL_TOPO_PEER_TIMEOUT_MIN_MS)
        sl__topo_err(p, pt, "'peer_timeout' must be at least %dms (heartbeats "
                     "go 4 times in that time), got %s",
                     SL_TOPO_PEER_TIMEOUT_MIN_MS,
                     sl__topo_what(pt, buf, sizeof(buf)));
    const sl_config_t *hosts = sl_config_get(root, "hosts");
    if (!hosts) {
        if (kd)
            sl__topo_err(p, kd, "'keys_dir' is for topologies with 'hosts:'");
        if (pt)
            sl__topo_err(p, pt, "'peer_timeout' is for topologies with "
                         "'hosts:'");
        if (ins && t->insecure)
            sl__topo_err(p, ins, "'insecure' is for topologies with 'hosts:'");
        return;
    }
    if (sl_config_type(hosts) != SL_CONFIG_MAP || !sl_config_len(hosts)) {
        sl__topo_err(p, hosts, "'hosts' must be a map of node names to "
                     "{address, port, key or key_file}, got %s",
                     sl__topo_what(hosts, buf, sizeof(buf)));
        return;
    }
    const sl_config_t *sd = sl_config_get(root, "state_dir");
    if (sd) /* a source's positions are acknowledged by sinks on its node */
        sl__topo_err(p, sd, "'state_dir' cannot be used with 'hosts:' yet: "
                     "source positions are only committed within one node");
    size_t n = sl_config_len(hosts);
    if (!(t->hosts = calloc(n, sizeof(*t->hosts)))) {
        p->oom = true;
        return;
    }
    for (size_t k = 0; k < n; k++)
        s_parse_host(p, sl_config_key_at(hosts, k),
                     sl_config_value_at(hosts, k));
}

static const char *s_host_name(const sl_topology_t *t, long h)
{
    return h >= 0 ? t->hosts[h].name : "?";
}

/* Two nodes that share an address must not share a port: each uses
 * port .. port + stages - 1. */
static void s_check_ports(sl_topo_parse_t *p)
{
    sl_topology_t *t = p->t;
    uint32_t span = (uint32_t)t->n_stages;
    for (size_t a = 0; a < t->n_hosts; a++) {
        const sl_topo_host_t *ha = &t->hosts[a];
        if (ha->port + span - 1 > 65535)
            sl__topo_err(p, ha->port_node, "host '%s': ports %u..%u (port + "
                         "stage index) go beyond 65535", ha->name, ha->port,
                         ha->port + span - 1);
        for (size_t b = 0; b < a; b++) {
            const sl_topo_host_t *hb = &t->hosts[b];
            if (strcmp(ha->address, hb->address) != 0)
                continue;
            if (ha->port < hb->port + span && hb->port < ha->port + span)
                sl__topo_err(p, ha->port_node, "host '%s': ports %u..%u "
                             "overlap those of host '%s' (%u..%u) at the "
                             "same address %s", ha->name, ha->port,
                             ha->port + span - 1, hb->name, hb->port,
                             hb->port + span - 1, ha->address);
        }
    }
}

void sl__topo_place_stages(sl_topo_parse_t *p)
{
    sl_topology_t *t = p->t;
    char buf[96];
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        if (!s->node)
            continue;
        const sl_config_t *h = sl_config_get(s->node, "host");
        if (!h) {
            s->host = t->n_hosts ? 0 : -1;
            continue;
        }
        if (!t->n_hosts) {
            sl__topo_err(p, h, "%s: 'host' needs a 'hosts:' map at the top "
                         "level", p->info[i].label);
            continue;
        }
        const char *name = sl__topo_name_text(h);
        long k = name ? sl__topology_find_host(t, name) : -1;
        if (k >= 0) {
            s->host = k;
            continue;
        }
        const char *cands[t->n_hosts];
        for (size_t j = 0; j < t->n_hosts; j++)
            cands[j] = t->hosts[j].name;
        const char *hint = name ? sl__topo_suggest(name, cands, t->n_hosts)
                                : NULL;
        if (!name)
            sl__topo_err(p, h, "%s: 'host' must be a node name from "
                         "'hosts:', got %s", p->info[i].label,
                         sl__topo_what(h, buf, sizeof(buf)));
        else
            sl__topo_err(p, h, "%s: unknown host '%s'%s%s%s",
                         p->info[i].label, name,
                         hint ? " (did you mean '" : "", hint ? hint : "",
                         hint ? "'?)" : "");
    }
    if (!t->n_hosts)
        return;
    s_check_ports(p);
    for (size_t i = 0; i < t->n_stages; i++) {
        sl_topo_stage_t *s = &t->stages[i];
        if (!s->node || s->host < 0)
            continue;
        const sl_config_t *at = sl_config_get(s->node, "host");
        if (!t->insecure && !t->hosts[s->host].key_node)
            sl__topo_err(p, at ? at : t->hosts[s->host].node,
                         "%s runs on host '%s', which has no 'key' or "
                         "'key_file' (run `sluice keygen %s`, or set "
                         "'insecure: true' for plain tcp)",
                         p->info[i].label, t->hosts[s->host].name,
                         t->hosts[s->host].name);
        if (s->dl_stage >= 0 && t->stages[s->dl_stage].host >= 0 &&
            t->stages[s->dl_stage].host != s->host)
            sl__topo_err(p, p->info[i].dl_stage_node ? p->info[i].dl_stage_node
                                                     : s->node,
                         "%s (host '%s') has its dead-letter stage '%s' on "
                         "host '%s'; dead-letter links cannot cross nodes yet",
                         p->info[i].label, s_host_name(t, s->host),
                         t->stages[s->dl_stage].name,
                         s_host_name(t, t->stages[s->dl_stage].host));
    }
}

long sl__topology_find_host(const sl_topology_t *topo, const char *name)
{
    for (size_t i = 0; i < topo->n_hosts; i++)
        if (strcmp(topo->hosts[i].name, name) == 0)
            return (long)i;
    return -1;
}

int sl__topology_set_node(sl_topology_t *topo, const char *name, char *err,
                          size_t errlen)
{
    long k = sl__topology_find_host(topo, name);
    if (k >= 0) {
        topo->run_node = k;
        return 0;
    }
    if (!topo->n_hosts) {
        snprintf(err, errlen, "--node %s: the topology has no 'hosts:'; it "
                 "runs whole in one process", name);
        return -ENOENT;
    }
    int n = snprintf(err, errlen, "--node %s: no such host; the topology's "
                     "hosts are", name);
    for (size_t i = 0; i < topo->n_hosts && n >= 0 && (size_t)n < errlen; i++)
        n += snprintf(err + n, errlen - (size_t)n, "%s '%s'", i ? "," : "",
                      topo->hosts[i].name);
    return -ENOENT;
}

void sl__topo_hosts_free(sl_topology_t *t)
{
    for (size_t k = 0; k < t->n_hosts; k++) {
        free(t->hosts[k].name);
        free(t->hosts[k].address);
    }
    free(t->hosts);
    free(t->keys_dir);
    t->hosts = NULL;
    t->keys_dir = NULL;
    t->n_hosts = 0;
}

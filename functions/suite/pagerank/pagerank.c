/* pagerank (FaaSnap): PageRank of an undirected Barabasi-Albert graph. The original built the
 * graph with igraph inside the request; here the TypeScript side generates the edges
 * (src/suite/inputs/pagerank.ts) and the input object carries them, so the check can run the
 * same PageRank on the same graph. The request builds the adjacency (CSR) from the edges and
 * iterates: damping 0.85, dangling mass spread evenly, until the L1 change is below 1e-10 or
 * after 100 iterations. Output object: the ranks as little-endian doubles.
 *
 * Input object (little-endian u32s):
 *   +0 "BAG1" | +4 nodes | +8 edge count | +12 edges per new node (m) | +16 (src, dst) pairs */
#include <math.h>
#include "suite.h"

#define DAMPING 0.85
#define TOLERANCE 1e-10
#define MAX_ITERATIONS 100

THAW_EXPORT("handle") int32_t handle(void) {
  suite_event ev;
  if (suite_read_event(&ev) != 0) return suite_fail("request must be {\"input\": key, \"output\": key}");

  double t0 = suite_now();
  int32_t len;
  uint8_t *in = suite_read_object(ev.input, &len);
  if (in == NULL) return suite_fail_read(&ev, len);
  double t1 = suite_now();

  const uint32_t *hdr = (const uint32_t *)in;
  if (len < 16 || memcmp(in, "BAG1", 4) != 0) return suite_fail("input is not a BAG1 edge list");
  uint32_t nodes = hdr[1], edges = hdr[2];
  if (nodes == 0 || (size_t)len != 16 + (size_t)edges * 8) return suite_fail("BAG1 edge list: size does not match its header");
  const uint32_t *pairs = hdr + 4;

  uint32_t *offset = calloc((size_t)nodes + 1, sizeof *offset);
  uint32_t *fill = malloc((size_t)nodes * sizeof *fill);
  uint32_t *adj = malloc((size_t)edges * 2 * sizeof *adj);
  double *rank = malloc((size_t)nodes * sizeof *rank), *next = malloc((size_t)nodes * sizeof *next);
  double *contrib = malloc((size_t)nodes * sizeof *contrib);
  if (!offset || !fill || !adj || !rank || !next || !contrib) return suite_fail("out of memory: cannot allocate the graph");
  for (uint32_t e = 0; e < edges; e++) {
    uint32_t u = pairs[2 * e], v = pairs[2 * e + 1];
    if (u >= nodes || v >= nodes) return suite_fail("BAG1 edge list: node id out of range");
    offset[u + 1]++;
    offset[v + 1]++;
  }
  for (uint32_t i = 0; i < nodes; i++) offset[i + 1] += offset[i];
  memcpy(fill, offset, (size_t)nodes * sizeof *fill);
  for (uint32_t e = 0; e < edges; e++) {
    uint32_t u = pairs[2 * e], v = pairs[2 * e + 1];
    adj[fill[u]++] = v;
    adj[fill[v]++] = u;
  }
  free(fill);
  free(in);

  for (uint32_t i = 0; i < nodes; i++) rank[i] = 1.0 / nodes;
  uint32_t iterations = 0;
  double diff = 0;
  while (iterations < MAX_ITERATIONS) {
    iterations++;
    double dangling = 0;
    for (uint32_t i = 0; i < nodes; i++) {
      uint32_t degree = offset[i + 1] - offset[i];
      if (degree == 0) {
        dangling += rank[i];
        contrib[i] = 0;
      } else {
        contrib[i] = rank[i] / degree;
      }
    }
    double teleport = (1.0 - DAMPING) / nodes + DAMPING * dangling / nodes;
    diff = 0;
    for (uint32_t i = 0; i < nodes; i++) {
      double s = 0;
      for (uint32_t e = offset[i]; e < offset[i + 1]; e++) s += contrib[adj[e]];
      next[i] = teleport + DAMPING * s;
      diff += fabs(next[i] - rank[i]);
    }
    double *swap = rank;
    rank = next;
    next = swap;
    if (diff < TOLERANCE) break;
  }
  double sum = 0, top_rank = -1;
  uint32_t top_node = 0;
  for (uint32_t i = 0; i < nodes; i++) {
    sum += rank[i];
    if (rank[i] > top_rank) {
      top_rank = rank[i];
      top_node = i;
    }
  }
  double t2 = suite_now();

  suite_write_object(ev.output, rank, (size_t)nodes * sizeof *rank);
  double t3 = suite_now();
  free(offset);
  free(adj);
  free(rank);
  free(next);
  free(contrib);
  char summary[320];
  snprintf(summary, sizeof summary,
           "{\"nodes\":%u,\"edges\":%u,\"iterations\":%u,\"last_l1_change\":%.17g,\"rank_sum\":%.17g,\"top_node\":%u,\"top_rank\":%.17g}",
           nodes, edges, iterations, diff, sum, top_node, top_rank);
  return suite_reply(&ev, t1 - t0, t2 - t1, t3 - t2, summary);
}

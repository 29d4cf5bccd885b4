// Inputs of the suite function "pagerank": undirected Barabasi-Albert graphs as "BAG1" edge
// lists (functions/suite/pagerank/pagerank.c), and a PageRank the check runs on the same graph.

import { Prng } from './prng.js';

const HEADER_BYTES = 16;
/** PageRank settings shared with pagerank.c. */
export const PAGERANK_DAMPING = 0.85;
export const PAGERANK_TOLERANCE = 1e-10;
export const PAGERANK_MAX_ITERATIONS = 100;

/** A graph as the function receives it. */
export interface EdgeList {
  readonly nodes: number;
  /** Edges per new node (m). */
  readonly m: number;
  /** (src, dst) pairs, 2 x edge count. */
  readonly pairs: Uint32Array;
}

/**
 * Barabasi-Albert preferential attachment as igraph.Graph.Barabasi(n, m) builds it (undirected,
 * no multi-edges, zero appeal 1): node v links to min(v, m) distinct earlier nodes, each picked
 * with probability proportional to its degree + 1.
 */
export function barabasiAlbert(nodes: number, m: number, seed: number): EdgeList {
  const rng = new Prng(seed);
  // Each node appears once per unit of appeal (1 + degree): a uniform pick from the pool is a
  // pick proportional to degree + 1.
  const pool = new Uint32Array(nodes + 2 * m * nodes);
  let poolLen = 0;
  const pairs = new Uint32Array(2 * m * nodes);
  let edgeCount = 0;
  const chosen: number[] = [];
  pool[poolLen++] = 0;
  for (let v = 1; v < nodes; v++) {
    const k = Math.min(v, m);
    chosen.length = 0;
    while (chosen.length < k) {
      const t = pool[rng.int(poolLen)]!;
      if (!chosen.includes(t)) chosen.push(t);
    }
    for (const t of chosen) {
      pairs[2 * edgeCount] = v;
      pairs[2 * edgeCount + 1] = t;
      edgeCount++;
      pool[poolLen++] = t;
    }
    pool[poolLen++] = v;
    for (let i = 0; i < k; i++) pool[poolLen++] = v;
  }
  return { nodes, m, pairs: pairs.slice(0, 2 * edgeCount) };
}

/** The input object: header then the pairs. */
export function encodeEdgeList(graph: EdgeList): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + graph.pairs.byteLength);
  const view = new DataView(out.buffer);
  out.set(Buffer.from('BAG1', 'latin1'), 0);
  view.setUint32(4, graph.nodes, true);
  view.setUint32(8, graph.pairs.length / 2, true);
  view.setUint32(12, graph.m, true);
  out.set(new Uint8Array(graph.pairs.buffer, graph.pairs.byteOffset, graph.pairs.byteLength), HEADER_BYTES);
  return out;
}

/** Reads an input object back. Throws when it is not a BAG1 edge list. */
export function decodeEdgeList(bytes: Uint8Array): EdgeList {
  if (bytes.length < HEADER_BYTES || Buffer.from(bytes.subarray(0, 4)).toString('latin1') !== 'BAG1') throw new Error('not a BAG1 edge list');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const edges = view.getUint32(8, true);
  const pairs = new Uint32Array(2 * edges);
  for (let i = 0; i < 2 * edges; i++) pairs[i] = view.getUint32(HEADER_BYTES + 4 * i, true);
  return { nodes: view.getUint32(4, true), m: view.getUint32(12, true), pairs };
}

/**
 * PageRank of the undirected graph (each edge counts both ways): damping 0.85, dangling mass
 * spread evenly, power iteration until the L1 change is below 1e-10 or after 100 iterations.
 * Sums in the same order as pagerank.c (neighbours in edge order), so the ranks agree closely.
 */
export function pageRank(graph: EdgeList): { ranks: Float64Array; iterations: number } {
  const { nodes, pairs } = graph;
  const offset = new Uint32Array(nodes + 1);
  for (const v of pairs) offset[v + 1]!++;
  for (let i = 0; i < nodes; i++) offset[i + 1]! += offset[i]!;
  const fill = offset.slice(0, nodes);
  const adj = new Uint32Array(pairs.length);
  for (let e = 0; e < pairs.length; e += 2) {
    const u = pairs[e]!;
    const v = pairs[e + 1]!;
    adj[fill[u]!++] = v;
    adj[fill[v]!++] = u;
  }
  let rank = new Float64Array(nodes).fill(1 / nodes);
  let next = new Float64Array(nodes);
  const contrib = new Float64Array(nodes);
  let iterations = 0;
  while (iterations < PAGERANK_MAX_ITERATIONS) {
    iterations++;
    let dangling = 0;
    for (let i = 0; i < nodes; i++) {
      const degree = offset[i + 1]! - offset[i]!;
      if (degree === 0) {
        dangling += rank[i]!;
        contrib[i] = 0;
      } else {
        contrib[i] = rank[i]! / degree;
      }
    }
    const teleport = (1 - PAGERANK_DAMPING) / nodes + (PAGERANK_DAMPING * dangling) / nodes;
    let diff = 0;
    for (let i = 0; i < nodes; i++) {
      let s = 0;
      for (let e = offset[i]!; e < offset[i + 1]!; e++) s += contrib[adj[e]!]!;
      next[i] = teleport + PAGERANK_DAMPING * s;
      diff += Math.abs(next[i]! - rank[i]!);
    }
    [rank, next] = [next, rank];
    if (diff < PAGERANK_TOLERANCE) break;
  }
  return { ranks: rank, iterations };
}

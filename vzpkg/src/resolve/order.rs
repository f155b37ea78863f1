//! Install order over a dependency graph, shared by the Debian and RPM
//! resolvers.
//!
//! Each package comes after what it depends on. Cycles cannot be honoured
//! in full, so inside one a weak dependency (Debian `Depends`, plain RPM
//! `Requires`) gives way before a strong one (`Pre-Depends`,
//! `Requires(pre)`), which must hold when the dependent's scripts run.
//! Every remaining choice goes to the smallest key, so the order depends
//! only on the packages and their dependencies, not on input order.

use std::collections::BTreeSet;

/// How much a dependency matters when a cycle forces one to be broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// Needed for the dependent to work, not to install it.
    Weak,
    /// Needed while the dependent is being installed.
    Strong,
}

impl Strength {
    pub fn strong_if(strong: bool) -> Strength {
        if strong {
            Strength::Strong
        } else {
            Strength::Weak
        }
    }
}

/// Nodes `0..keys.len()` with their tie-break keys, and dependency edges.
#[derive(Debug, Clone)]
pub struct Graph<K> {
    keys: Vec<K>,
    /// Per node, what it depends on.
    deps: Vec<Vec<(usize, Strength)>>,
}

impl<K: Ord> Graph<K> {
    /// One node per key; ties between equal keys go to the smaller node.
    pub fn new(keys: Vec<K>) -> Self {
        let deps = vec![Vec::new(); keys.len()];
        Graph { keys, deps }
    }

    /// `from` depends on `to`: `to` is installed first. A package that
    /// satisfies its own dependency needs no ordering, so self-edges are
    /// dropped, and repeated edges change nothing.
    pub fn add_edge(&mut self, from: usize, to: usize, strength: Strength) {
        if from != to && !self.deps[from].contains(&(to, strength)) {
            self.deps[from].push((to, strength));
        }
    }

    /// Every node once, dependencies first. Strongly connected components
    /// come in dependency order, ready ones by their smallest key. Inside
    /// one, the first in key order with no unplaced dependency goes next,
    /// else the first with no unplaced strong one, else the first.
    pub fn install_order(&self) -> Vec<usize> {
        let n = self.keys.len();
        let mut by_key: Vec<usize> = (0..n).collect();
        by_key.sort_by(|&a, &b| self.keys[a].cmp(&self.keys[b]).then(a.cmp(&b)));
        let mut rank = vec![0; n];
        for (r, &u) in by_key.iter().enumerate() {
            rank[u] = r;
        }
        let comp = components(&self.deps);
        let ncomp = comp.iter().map(|&c| c + 1).max().unwrap_or(0);
        // Each in key order, so members[c][0] has the smallest key.
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); ncomp];
        for &u in &by_key {
            members[comp[u]].push(u);
        }
        // The component graph: waiting[c] = components c still needs.
        let mut waiting = vec![BTreeSet::new(); ncomp];
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); ncomp];
        for (u, deps) in self.deps.iter().enumerate() {
            for &(v, _) in deps {
                if comp[u] != comp[v] && waiting[comp[u]].insert(comp[v]) {
                    users[comp[v]].push(comp[u]);
                }
            }
        }
        let mut ready: BTreeSet<(usize, usize)> = (0..ncomp)
            .filter(|&c| waiting[c].is_empty())
            .map(|c| (rank[members[c][0]], c))
            .collect();
        let mut placed = vec![false; n];
        let mut out = Vec::with_capacity(n);
        while let Some((_, c)) = ready.pop_first() {
            let mut left = members[c].clone();
            while !left.is_empty() {
                let blocked = |u: usize, strong_only: bool| {
                    self.deps[u].iter().any(|&(v, s)| {
                        comp[v] == c && !placed[v] && (s == Strength::Strong || !strong_only)
                    })
                };
                let at = left
                    .iter()
                    .position(|&u| !blocked(u, false))
                    .or_else(|| left.iter().position(|&u| !blocked(u, true)))
                    .unwrap_or(0);
                let u = left.remove(at);
                placed[u] = true;
                out.push(u);
            }
            for &d in &users[c] {
                waiting[d].remove(&c);
                if waiting[d].is_empty() {
                    ready.insert((rank[members[d][0]], d));
                }
            }
        }
        out
    }
}

/// Strongly connected components (Tarjan, iterative so that long chains
/// cannot overflow the stack): each node's component number.
fn components(deps: &[Vec<(usize, Strength)>]) -> Vec<usize> {
    let n = deps.len();
    const UNSEEN: usize = usize::MAX;
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut comp = vec![0; n];
    let mut next_index = 0;
    let mut next_comp = 0;
    for start in 0..n {
        if index[start] != UNSEEN {
            continue;
        }
        // Frames: (node, next edge position).
        let mut call = vec![(start, 0usize)];
        index[start] = next_index;
        low[start] = next_index;
        next_index += 1;
        stack.push(start);
        on_stack[start] = true;
        while let Some(&mut (u, ref mut pos)) = call.last_mut() {
            if let Some(&(v, _)) = deps[u].get(*pos) {
                *pos += 1;
                if index[v] == UNSEEN {
                    index[v] = next_index;
                    low[v] = next_index;
                    next_index += 1;
                    stack.push(v);
                    on_stack[v] = true;
                    call.push((v, 0));
                } else if on_stack[v] {
                    low[u] = low[u].min(index[v]);
                }
                continue;
            }
            call.pop();
            if let Some(&(parent, _)) = call.last() {
                low[parent] = low[parent].min(low[u]);
            }
            if low[u] == index[u] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp[w] = next_comp;
                    if w == u {
                        break;
                    }
                }
                next_comp += 1;
            }
        }
    }
    comp
}

#[cfg(test)]
mod tests {
    use super::*;
    use Strength::{Strong, Weak};

    /// The install order of named nodes, as names.
    fn order<'a>(names: &[&'a str], edges: &[(&str, &str, Strength)]) -> Vec<&'a str> {
        let at = |name: &str| names.iter().position(|n| *n == name).unwrap();
        let mut g = Graph::new(names.to_vec());
        for &(from, to, s) in edges {
            g.add_edge(at(from), at(to), s);
        }
        g.install_order().into_iter().map(|u| names[u]).collect()
    }

    #[test]
    fn chain_is_dependencies_first() {
        let edges = [("a", "b", Weak), ("b", "c", Strong), ("c", "d", Weak)];
        assert_eq!(order(&["a", "b", "c", "d"], &edges), ["d", "c", "b", "a"]);
        // Independent nodes and ready components go by key.
        assert_eq!(order(&["z", "m", "a"], &[]), ["a", "m", "z"]);
        assert_eq!(
            order(&["b", "a", "y", "x"], &[("a", "y", Weak), ("b", "x", Weak)]),
            ["x", "b", "y", "a"]
        );
        assert!(order(&[], &[]).is_empty());
    }

    #[test]
    fn weak_cycle_is_broken_by_key() {
        let edges = [("a", "b", Weak), ("b", "c", Weak), ("c", "a", Weak)];
        assert_eq!(order(&["c", "b", "a"], &edges), ["a", "c", "b"]);
        // The cycle still waits for what it depends on, and comes before
        // what depends on it.
        let mut more = edges.to_vec();
        more.extend([("b", "base", Weak), ("top", "a", Strong)]);
        assert_eq!(
            order(&["top", "c", "base", "b", "a"], &more),
            ["base", "a", "c", "b", "top"]
        );
    }

    #[test]
    fn weak_edge_gives_way_inside_a_strong_cycle() {
        // a needs b strongly, b needs a weakly: a's edge is kept.
        assert_eq!(
            order(&["a", "b"], &[("a", "b", Strong), ("b", "a", Weak)]),
            ["b", "a"]
        );
        // A strong chain closed by a weak edge: only that edge is broken.
        let edges = [("a", "b", Strong), ("b", "c", Strong), ("c", "a", Weak)];
        assert_eq!(order(&["a", "b", "c"], &edges), ["c", "b", "a"]);
        // A strong two-cycle with a weak edge inside the component: z needs
        // only weak edges, so it goes first; the strong pair then breaks by key.
        let edges = [
            ("x", "y", Strong),
            ("y", "x", Strong),
            ("y", "z", Weak),
            ("z", "x", Weak),
        ];
        assert_eq!(order(&["z", "y", "x"], &edges), ["z", "x", "y"]);
        // Strong edges only: broken at the smallest key.
        let edges = [("x", "y", Strong), ("y", "x", Strong)];
        assert_eq!(order(&["y", "x"], &edges), ["x", "y"]);
        // Self-edges and repeats change nothing.
        let edges = [("a", "a", Strong), ("a", "b", Weak), ("a", "b", Weak)];
        assert_eq!(order(&["a", "b"], &edges), ["b", "a"]);
    }

    #[test]
    fn same_order_under_any_input_permutation() {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let names = ["base", "libc", "a", "b", "c", "d", "e", "f", "top"];
        let edges = [
            ("libc", "base", Strong),
            ("a", "b", Strong),
            ("b", "c", Weak),
            ("c", "a", Weak),
            ("c", "libc", Strong),
            ("d", "e", Strong),
            ("e", "d", Strong),
            ("e", "f", Weak),
            ("f", "d", Weak),
            ("top", "a", Weak),
            ("top", "e", Weak),
        ];
        let want = order(&names, &edges);
        assert_eq!(want, ["base", "f", "d", "e", "libc", "b", "a", "c", "top"]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for _ in 0..200 {
            let mut n = names.to_vec();
            let mut e = edges.to_vec();
            n.shuffle(&mut rng);
            e.shuffle(&mut rng);
            assert_eq!(order(&n, &e), want, "{n:?} {e:?}");
        }
    }
}

//! The cluster's nodes: where pods are placed, and how many nodes are in use.

/// A node's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeSize {
    /// Cores a node offers to pods.
    pub cores: f64,
    /// Memory a node offers to pods, in MB.
    pub memory_mb: f64,
}

/// Nodes, opened as pods need them and released when their last pod leaves (a cluster
/// autoscaler with no scale-down delay and no pod migration: placement is first fit, so a
/// node stays in use while any pod is left on it).
#[derive(Debug)]
pub struct Nodes {
    size: NodeSize,
    max_nodes: usize,
    free: Vec<Option<Free>>,
    open: usize,
}

#[derive(Debug, Clone, Copy)]
struct Free {
    cores: f64,
    memory_mb: f64,
    pods: u32,
}

impl Nodes {
    /// Up to `max_nodes` nodes of `size`.
    pub fn new(size: NodeSize, max_nodes: usize) -> Nodes {
        Nodes { size, max_nodes, free: Vec::new(), open: 0 }
    }

    /// Nodes with at least one pod.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Whether a pod of this size could ever be placed.
    pub fn fits_empty(&self, cores: f64, memory_mb: f64) -> bool {
        cores <= self.size.cores && memory_mb <= self.size.memory_mb
    }

    /// Places a pod that requests `cores` and `memory_mb` on the first open node with room, or
    /// opens a node. `None` when every node is full (the pod stays pending).
    pub fn place(&mut self, cores: f64, memory_mb: f64) -> Option<usize> {
        let fits = |f: &Free| f.cores + 1e-9 >= cores && f.memory_mb + 1e-9 >= memory_mb;
        let slot = match self.free.iter().position(|n| n.as_ref().is_some_and(fits)) {
            Some(slot) => slot,
            None => {
                if self.open >= self.max_nodes || !self.fits_empty(cores, memory_mb) {
                    return None;
                }
                self.open += 1;
                let fresh = Some(Free { cores: self.size.cores, memory_mb: self.size.memory_mb, pods: 0 });
                match self.free.iter().position(Option::is_none) {
                    Some(slot) => {
                        self.free[slot] = fresh;
                        slot
                    }
                    None => {
                        self.free.push(fresh);
                        self.free.len() - 1
                    }
                }
            }
        };
        if let Some(node) = self.free[slot].as_mut() {
            node.cores -= cores;
            node.memory_mb -= memory_mb;
            node.pods += 1;
        }
        Some(slot)
    }

    /// Frees what a pod held on `node`; a node left empty is released.
    pub fn remove(&mut self, node: usize, cores: f64, memory_mb: f64) {
        let Some(Some(n)) = self.free.get_mut(node) else {
            return;
        };
        n.cores += cores;
        n.memory_mb += memory_mb;
        n.pods -= 1;
        if n.pods == 0 {
            self.free[node] = None;
            self.open -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_opens_nodes_only_when_needed_and_releases_empty_ones() {
        let mut nodes = Nodes::new(NodeSize { cores: 4.0, memory_mb: 1000.0 }, 2);
        assert_eq!(nodes.place(2.0, 400.0), Some(0));
        assert_eq!(nodes.place(2.0, 400.0), Some(0));
        assert_eq!(nodes.place(3.0, 100.0), Some(1));
        assert_eq!(nodes.open(), 2);
        // Both nodes lack cores for a 2-core pod, and no third node may open.
        assert_eq!(nodes.place(2.0, 100.0), None);
        nodes.remove(1, 3.0, 100.0);
        assert_eq!(nodes.open(), 1);
        assert_eq!(nodes.place(2.0, 100.0), Some(1));
        assert!(!nodes.fits_empty(5.0, 1.0));
    }
}

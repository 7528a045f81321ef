//! Epoch-shuffled mini-batches, the one batching scheme of the epoch-trained models: step s of
//! batch size B falls in epoch ⌊s / E⌋ (E = full batches per epoch) and takes rows
//! [i·B, (i+1)·B) of that epoch's seeded permutation, so a resumed run sees exactly the batches an
//! uninterrupted one would.
use crate::rng::Rng;
use std::cell::RefCell;
use tch::Tensor;

/// The row indices of each step's batch over `rows` rows, permuted once per epoch.
pub struct EpochBatches {
    rows: i64,
    seed: u64,
    /// The permutation of the current epoch (epoch −1: none yet).
    order: RefCell<(i64, Vec<i64>)>,
}

impl EpochBatches {
    pub fn new(rows: i64, seed: u64) -> Self {
        EpochBatches {
            rows,
            seed,
            order: RefCell::new((-1, vec![])),
        }
    }

    /// Full batches per epoch (at least 1: a batch larger than the data takes all of it).
    pub fn steps_per_epoch(&self, batch_size: i64) -> i64 {
        (self.rows / batch_size).max(1)
    }

    /// The indices (`[min(B, rows)]`, int64, on `device`) of global step `step`'s batch.
    pub fn indices(&self, step: i64, batch_size: i64, device: tch::Device) -> Tensor {
        let per_epoch = self.steps_per_epoch(batch_size);
        let (epoch, i) = (step / per_epoch, step % per_epoch);
        let mut order = self.order.borrow_mut();
        if order.0 != epoch {
            let mut perm: Vec<i64> = (0..self.rows).collect();
            Rng::for_epoch(self.seed, epoch).shuffle(&mut perm);
            *order = (epoch, perm);
        }
        let len = batch_size.min(self.rows);
        Tensor::from_slice(&order.1[(i * len) as usize..((i + 1) * len) as usize]).to_device(device)
    }
}

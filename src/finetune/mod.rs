//! Fine-tuning: select parameters by name, freeze/unfreeze them, keep frozen BatchNorm in
//! eval mode, replace heads and load pretrained weights around them.

mod freeze;
mod head;
mod selector;

pub use freeze::{freeze, frozen_batchnorm_to_eval, unfreeze};
pub use head::{PretrainedReport, load_pretrained, replace_linear_head};
pub use selector::{Pattern, Selector};

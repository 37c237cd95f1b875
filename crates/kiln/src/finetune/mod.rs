//! Fine-tuning: select parameters by name, freeze/unfreeze them, keep frozen BatchNorm in
//! eval mode, replace heads and load pretrained weights around them, build parameter groups
//! from patterns and unfreeze the backbone on a schedule.

mod freeze;
mod groups;
mod head;
mod schedule;
mod selector;
mod setup;

pub use freeze::{freeze, frozen_batchnorm_to_eval, unfreeze};
pub use groups::{GroupRule, param_groups};
pub use head::{
    AdaptedConv, PretrainedReport, adapt_input_conv, load_pretrained, replace_linear_head,
};
pub use schedule::{DEFAULT_UNFREEZE_LR_RATIO, UnfreezeRule, UnfreezeSchedule, UnfreezeStep};
pub use selector::{Pattern, Selector};
pub use setup::{FinetuneConfig, Prepared, prepare};

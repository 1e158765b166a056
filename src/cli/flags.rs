//! The kinds' own flags, built into a command line from the registry
//! (`drtool init`'s discovery flags, `drtool restore`'s options): each kind
//! declares them as [`FlagSpec`]s and reads their values from [`FlagValues`].

use std::collections::BTreeMap;
use std::marker::PhantomData;

use super::split_pair;
use crate::engine::kind::{FlagShape, FlagSpec, FlagValues};
use crate::engine::options::once_each;

/// Which of the kinds' flags a command takes.
pub trait FlagSet {
    /// Every flag, each long name once.
    fn specs() -> Vec<FlagSpec>;
}

/// `drtool init`: each kind's `Discovery::init_flags`.
#[derive(Debug, Clone, Default)]
pub struct Init;

impl FlagSet for Init {
    fn specs() -> Vec<FlagSpec> {
        once_each(
            crate::source::registry()
                .all()
                .filter_map(|k| k.discovery())
                .flat_map(|d| d.init_flags().iter().copied()),
        )
    }
}

/// `drtool restore`: each kind's `TargetKind::restore_flags`.
#[derive(Debug, Clone, Default)]
pub struct Restore;

impl FlagSet for Restore {
    fn specs() -> Vec<FlagSpec> {
        crate::source::registry().all_restore_flags()
    }
}

/// The values given to the kinds' flags of one command.
#[derive(Debug, Clone, Default)]
pub struct KindFlags<S> {
    pub values: FlagValues,
    set: PhantomData<S>,
}

impl<S> KindFlags<S> {
    pub fn new(values: FlagValues) -> KindFlags<S> {
        KindFlags {
            values,
            set: PhantomData,
        }
    }
}

impl<S: FlagSet> clap::FromArgMatches for KindFlags<S> {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = BTreeMap::new();
        for spec in S::specs() {
            let given: Vec<String> = if spec.shape == FlagShape::Switch {
                if m.get_flag(spec.long) {
                    vec!["true".to_string()]
                } else {
                    Vec::new()
                }
            } else {
                m.get_many::<String>(spec.long)
                    .map(|v| v.cloned().collect())
                    .unwrap_or_default()
            };
            if !given.is_empty() {
                flags.insert(spec.long.to_string(), given);
            }
        }
        Ok(KindFlags::new(FlagValues(flags)))
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<S: FlagSet> clap::Args for KindFlags<S> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        S::specs().into_iter().fold(cmd, |cmd, spec| {
            let arg = clap::Arg::new(spec.long).long(spec.long).help(spec.help);
            let arg = match spec.shape {
                FlagShape::Switch => return cmd.arg(arg.action(clap::ArgAction::SetTrue)),
                _ => arg.value_name(spec.value_name).value_hint(if spec.file {
                    clap::ValueHint::FilePath
                } else {
                    clap::ValueHint::Unknown
                }),
            };
            cmd.arg(match spec.shape {
                FlagShape::One | FlagShape::Switch => arg.action(clap::ArgAction::Set),
                FlagShape::Many => arg.action(clap::ArgAction::Append),
                FlagShape::List => arg.action(clap::ArgAction::Append).value_delimiter(','),
                FlagShape::RegionPairs => {
                    arg.action(clap::ArgAction::Append).value_parser(|s: &str| {
                        split_pair(s, "REGION=VALUE", false).map(|_| s.to_string())
                    })
                }
            })
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

//! How a component declares its metrics (name beside help, once) and the one way its
//! metric set joins a Prometheus registry.

use prometheus::core::Collector;
use prometheus::{HistogramOpts, Opts, Registry};

/// A metric's name and help text, declared together as a constant of its crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The full name, `totesys_cdc_<component>_<what>_<unit>`.
    pub name: &'static str,
    /// What it counts or measures, for `# HELP` and `totesys-cdc metrics`.
    pub help: &'static str,
}

impl Metric {
    /// A metric definition.
    pub const fn new(name: &'static str, help: &'static str) -> Metric {
        Metric { name, help }
    }

    /// Options of a counter or gauge with this name and help.
    pub fn opts(&self) -> Opts {
        Opts::new(self.name, self.help)
    }

    /// Options of a histogram with this name and help (default buckets).
    pub fn histogram(&self) -> HistogramOpts {
        HistogramOpts::new(self.name, self.help)
    }
}

/// The sum of a labelled counter over all its series.
pub fn counter_total(counter: &prometheus::IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    counter
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

/// A component's metrics as one set: created together, listed together, registered together.
pub trait MetricSet: Sized {
    /// Creates the metrics without registering them anywhere (tests, embedding, listing).
    fn unregistered() -> Result<Self, prometheus::Error>;

    /// Every metric of the set, as collectors (for registering, and for listing what is
    /// exported).
    fn collectors(&self) -> Vec<Box<dyn Collector>>;

    /// Registers every metric of the set in `registry` and hands the set back.
    fn registered_in(self, registry: &Registry) -> Result<Self, prometheus::Error> {
        register_all(registry, self.collectors())?;
        Ok(self)
    }

    /// Creates the metrics and registers them in `registry`.
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        Self::unregistered()?.registered_in(registry)
    }
}

/// Boxes metrics as the collectors [`MetricSet::collectors`] lists.
#[macro_export]
macro_rules! collectors {
    ($($metric:expr),* $(,)?) => {
        vec![$(Box::new($metric.clone()) as Box<dyn prometheus::core::Collector>),*]
    };
}

/// Registers every collector of a component's metric set in `registry`; the first refusal
/// (a name registered twice) is the error.
pub fn register_all(
    registry: &Registry,
    collectors: Vec<Box<dyn Collector>>,
) -> Result<(), prometheus::Error> {
    collectors
        .into_iter()
        .try_for_each(|collector| registry.register(collector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_registered_twice_is_refused() {
        let registry = Registry::new();
        let counter = || -> Box<dyn Collector> {
            Box::new(prometheus::IntCounter::new("totesys_cdc_test_total", "A test.").unwrap())
        };
        register_all(&registry, vec![counter()]).unwrap();
        assert!(register_all(&registry, vec![counter()]).is_err());
        assert_eq!(registry.gather().len(), 1);
    }
}

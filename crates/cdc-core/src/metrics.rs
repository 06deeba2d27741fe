//! The one way a component's metrics join a Prometheus registry.

use prometheus::core::Collector;
use prometheus::Registry;

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

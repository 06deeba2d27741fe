//! The kinds of work the application does, how often, and how many rows each changes.

use rand::Rng;

/// A kind of unit of work; one is drawn per unit from [`MIX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    Sale,
    Purchase,
    UpdateSalesOrder,
    UpdatePurchaseOrder,
    MarkPaid,
    MoveStaff,
    UpdateDepartment,
    UpdateAddress,
    UpdateCounterparty,
    NewDesign,
    MoveDesign,
    NewStaff,
    NewAddress,
    NewCounterparty,
    CancelPurchase,
    TouchCurrency,
    TouchPaymentType,
}

/// Each action with its weight in thousandths of units; the weights sum to 1000.
pub(crate) const MIX: [(Action, u32); 17] = [
    (Action::Sale, 340),
    (Action::Purchase, 100),
    (Action::UpdateSalesOrder, 120),
    (Action::UpdatePurchaseOrder, 50),
    (Action::MarkPaid, 150),
    (Action::MoveStaff, 30),
    (Action::UpdateDepartment, 20),
    (Action::UpdateAddress, 30),
    (Action::UpdateCounterparty, 30),
    (Action::NewDesign, 20),
    (Action::MoveDesign, 20),
    (Action::NewStaff, 15),
    (Action::NewAddress, 15),
    (Action::NewCounterparty, 15),
    (Action::CancelPurchase, 25),
    (Action::TouchCurrency, 10),
    (Action::TouchPaymentType, 10),
];

impl Action {
    /// Rows the action changes.
    pub(crate) fn cost(self) -> u64 {
        match self {
            Action::Sale | Action::Purchase | Action::CancelPurchase => 3,
            Action::NewCounterparty => 2,
            _ => 1,
        }
    }

    /// Draws an action that changes at most `budget` rows (at least 1), consuming the
    /// same random numbers whatever the state of the database.
    pub(crate) fn draw<R: Rng + ?Sized>(rng: &mut R, budget: u64) -> Action {
        let first = weighted(rng, MIX.iter().copied());
        if first.cost() <= budget {
            return first;
        }
        weighted(
            rng,
            MIX.iter()
                .copied()
                .filter(|(a, _)| a.cost() <= budget.max(1)),
        )
    }
}

fn weighted<R: Rng + ?Sized>(
    rng: &mut R,
    choices: impl Iterator<Item = (Action, u32)> + Clone,
) -> Action {
    let total: u32 = choices.clone().map(|(_, w)| w).sum();
    let mut point = rng.random_range(0..total.max(1));
    let mut last = Action::TouchCurrency;
    for (action, weight) in choices {
        if point < weight {
            return action;
        }
        point -= weight;
        last = action;
    }
    last
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn weights_sum_to_a_thousand() {
        assert_eq!(MIX.iter().map(|(_, w)| w).sum::<u32>(), 1000);
    }

    #[test]
    fn draws_follow_the_weights() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut seen: HashMap<Action, u32> = HashMap::new();
        let n = 200_000;
        for _ in 0..n {
            *seen.entry(Action::draw(&mut rng, u64::MAX)).or_default() += 1;
        }
        for (action, weight) in MIX {
            let expected = f64::from(weight) / 1000.0 * f64::from(n);
            let got = f64::from(seen.get(&action).copied().unwrap_or(0));
            assert!(
                (got - expected).abs() < expected * 0.1 + 50.0,
                "{action:?}: {got} vs {expected}"
            );
        }
    }

    #[test]
    fn draws_fit_the_budget() {
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..10_000 {
            assert_eq!(Action::draw(&mut rng, 1).cost(), 1);
            assert!(Action::draw(&mut rng, 2).cost() <= 2);
        }
    }
}

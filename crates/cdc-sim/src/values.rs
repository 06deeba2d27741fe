//! Values in the spec's ranges and formats: prices, quantities, dates, names, emails,
//! addresses and design files. Pure functions of a random number generator.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::seq::IndexedRandom;
use rand::Rng;

use crate::params::Cents;

/// ISO 4217 codes of the three currencies.
pub(crate) const CURRENCY_CODES: [&str; 3] = ["GBP", "USD", "EUR"];

/// The four payment types.
pub(crate) const PAYMENT_TYPES: [&str; 4] = [
    "SALES_RECEIPT",
    "SALES_REFUND",
    "PURCHASE_PAYMENT",
    "PURCHASE_REFUND",
];

/// The payment type of a sale's payment.
pub(crate) const SALES_RECEIPT: &str = "SALES_RECEIPT";

/// The payment type of a purchase's payment.
pub(crate) const PURCHASE_PAYMENT: &str = "PURCHASE_PAYMENT";

/// The eight departments of Terrific Totes.
pub(crate) const DEPARTMENTS: [&str; 8] = [
    "Sales",
    "Purchasing",
    "Production",
    "Dispatch",
    "Finance",
    "Facilities",
    "Communications",
    "HR",
];

const LOCATIONS: [&str; 6] = [
    "Manchester",
    "Leeds",
    "Sheffield",
    "Liverpool",
    "Bradford",
    "York",
];

const FIRST_NAMES: [&str; 32] = [
    "Jeremie",
    "Deron",
    "Jeanette",
    "Ana",
    "Magdalena",
    "Korey",
    "Raphael",
    "Oswaldo",
    "Brody",
    "Jazmyn",
    "Meda",
    "Imani",
    "Stan",
    "Rigoberto",
    "Tom",
    "Irving",
    "Tomasa",
    "Pierre",
    "Flavio",
    "Lucy",
    "Mabel",
    "Celia",
    "Hugo",
    "Priya",
    "Amara",
    "Niall",
    "Dylan",
    "Saoirse",
    "Yusuf",
    "Ingrid",
    "Tariq",
    "Esme",
];

const LAST_NAMES: [&str; 32] = [
    "Franey",
    "Beier",
    "Erdman",
    "Glover",
    "Zieme",
    "Kreiger",
    "Rippin",
    "Bergnaum",
    "Ondricka",
    "Bashirian",
    "Cremin",
    "Walsh",
    "Lehner",
    "Hermann",
    "Zulauf",
    "O'Keefe",
    "Sauer",
    "Mayert",
    "Hahn",
    "Kohler",
    "Boyle",
    "Hyatt",
    "Schmitt",
    "Okafor",
    "Patel",
    "Nakamura",
    "Lindqvist",
    "Moreau",
    "Kowalski",
    "Reyes",
    "Brennan",
    "Haddad",
];

const STREET_NAMES: [&str; 16] = [
    "Herzog",
    "Alexie",
    "Crona",
    "Zieme",
    "Kuhlman",
    "Lemke",
    "Schaden",
    "Torphy",
    "Nader",
    "Gulgowski",
    "Homenick",
    "Ritchie",
    "Rowe",
    "Wilkinson",
    "Ferry",
    "Kutch",
];

const STREET_KINDS: [&str; 12] = [
    "Via", "Cliffs", "Knoll", "Lights", "Road", "Street", "Lane", "Mews", "Parkway", "Crossing",
    "Green", "Walk",
];

const DISTRICTS: [&str; 8] = [
    "Avon",
    "Bedfordshire",
    "Buckinghamshire",
    "Cambridgeshire",
    "Cheshire",
    "Cumbria",
    "Derbyshire",
    "Kent",
];

const CITIES: [&str; 12] = [
    "New Patienceburgh",
    "Aliso Viejo",
    "Lake Charles",
    "Olsonside",
    "Fort Shadburgh",
    "Kendraburgh",
    "Suffolk",
    "Pricetown",
    "Hackettshire",
    "East Bobbie",
    "Oakland Park",
    "Maggiofurt",
];

const COUNTRIES: [&str; 12] = [
    "Turkey",
    "San Marino",
    "Austria",
    "Antigua and Barbuda",
    "United Kingdom",
    "Ireland",
    "Brazil",
    "Japan",
    "Canada",
    "Kenya",
    "Norway",
    "Chile",
];

const COMPANY_SUFFIXES: [&str; 5] = ["LLC", "Inc", "Group", "and Sons", "Ltd"];

const DESIGN_WORDS: [&str; 20] = [
    "Wooden", "Bronze", "Granite", "Soft", "Concrete", "Plastic", "Steel", "Rubber", "Cotton",
    "Frozen", "Fresh", "Metal", "Marble", "Linen", "Canvas", "Jute", "Denim", "Velvet", "Hemp",
    "Silk",
];

const DIRECTORIES: [&str; 12] = [
    "/usr/share",
    "/private",
    "/System",
    "/usr/ports",
    "/Users",
    "/opt/include",
    "/home/user/dir",
    "/Network",
    "/etc",
    "/usr/local/src",
    "/var/lib",
    "/opt/designs",
];

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// A calendar day, as days since 1970-01-01; displays as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Day(pub i64);

impl Day {
    /// Today in UTC.
    pub(crate) fn today() -> Day {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Day((secs / 86_400) as i64)
    }

    /// The day `days` later (earlier when negative).
    pub(crate) fn plus(self, days: i64) -> Day {
        Day(self.0 + days)
    }

    /// Year, month (1–12) and day of month (1–31) in the proleptic Gregorian calendar.
    pub(crate) fn civil(self) -> (i64, u32, u32) {
        // Count in 400-year eras starting on 0000-03-01, so that leap days end each year.
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_from_march = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
        let month = if month_from_march < 10 {
            month_from_march + 3
        } else {
            month_from_march - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        (year, month as u32, day)
    }

    /// `YYYYMMDD`, as in design file names.
    pub(crate) fn compact(self) -> String {
        let (y, m, d) = self.civil();
        format!("{y:04}{m:02}{d:02}")
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.civil();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn pick<R: Rng + ?Sized>(rng: &mut R, words: &[&'static str]) -> &'static str {
    words.choose(rng).copied().unwrap_or_default()
}

fn random_chars<R: Rng + ?Sized>(rng: &mut R, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

fn digits<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    random_chars(rng, b"0123456789", len)
}

/// `sales_order.units_sold`: 1000–100000.
pub(crate) fn units_sold<R: Rng + ?Sized>(rng: &mut R) -> i32 {
    rng.random_range(1_000..=100_000)
}

/// `sales_order.unit_price`: 2.00–4.00.
pub(crate) fn unit_price<R: Rng + ?Sized>(rng: &mut R) -> Cents {
    Cents(rng.random_range(200..=400))
}

/// `purchase_order.item_quantity`: 1–1000.
pub(crate) fn item_quantity<R: Rng + ?Sized>(rng: &mut R) -> i32 {
    rng.random_range(1..=1_000)
}

/// `purchase_order.item_unit_price`: 3.00–1000.00.
pub(crate) fn item_unit_price<R: Rng + ?Sized>(rng: &mut R) -> Cents {
    Cents(rng.random_range(300..=100_000))
}

/// `payment_amount` of an order: quantity × unit price, kept within 1.00–1000000.00.
pub(crate) fn order_amount(quantity: i32, unit_price: Cents) -> Cents {
    Cents((i64::from(quantity) * unit_price.0).clamp(100, 100_000_000))
}

/// `purchase_order.item_code`: seven upper-case letters and digits, e.g. `ZDOI5EA`.
pub(crate) fn item_code<R: Rng + ?Sized>(rng: &mut R) -> String {
    random_chars(rng, UPPER_ALNUM, 7)
}

/// A company or counterparty account number: 8 digits.
pub(crate) fn account_number<R: Rng + ?Sized>(rng: &mut R) -> i32 {
    rng.random_range(10_000_000..=99_999_999)
}

/// A person's first and last name.
pub(crate) fn person<R: Rng + ?Sized>(rng: &mut R) -> (&'static str, &'static str) {
    (pick(rng, &FIRST_NAMES), pick(rng, &LAST_NAMES))
}

/// A full name, as in counterparty contacts and department managers.
pub(crate) fn full_name<R: Rng + ?Sized>(rng: &mut R) -> String {
    let (first, last) = person(rng);
    format!("{first} {last}")
}

/// A staff email: `first.last@terrifictotes.com`, lower case, letters only.
pub(crate) fn email(first: &str, last: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphabetic)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    format!("{}.{}@terrifictotes.com", clean(first), clean(last))
}

/// An office location of a department.
pub(crate) fn location<R: Rng + ?Sized>(rng: &mut R) -> &'static str {
    pick(rng, &LOCATIONS)
}

/// A phone number, e.g. `1803 637401`.
pub(crate) fn phone<R: Rng + ?Sized>(rng: &mut R) -> String {
    format!("{} {}", rng.random_range(1_000..=9_999), digits(rng, 6))
}

/// A postal code, e.g. `28441` or `99305-7380`.
pub(crate) fn postal_code<R: Rng + ?Sized>(rng: &mut R) -> String {
    if rng.random_bool(0.5) {
        format!("{}", rng.random_range(10_000..=99_999))
    } else {
        format!(
            "{}-{}",
            rng.random_range(10_000..=99_999),
            rng.random_range(1_000..=9_999)
        )
    }
}

/// A counterparty's legal name, e.g. `Fahey and Sons` or `Zieme, Kreiger and Rippin`.
pub(crate) fn legal_name<R: Rng + ?Sized>(rng: &mut R) -> String {
    match rng.random_range(0..3) {
        0 => format!(
            "{} {}",
            pick(rng, &LAST_NAMES),
            pick(rng, &COMPANY_SUFFIXES)
        ),
        1 => format!("{} - {}", pick(rng, &LAST_NAMES), pick(rng, &LAST_NAMES)),
        _ => format!(
            "{}, {} and {}",
            pick(rng, &LAST_NAMES),
            pick(rng, &LAST_NAMES),
            pick(rng, &LAST_NAMES)
        ),
    }
}

/// A directory holding design files.
pub(crate) fn file_location<R: Rng + ?Sized>(rng: &mut R) -> &'static str {
    pick(rng, &DIRECTORIES)
}

/// A row of `address`, without its id.
#[derive(Debug, Clone)]
pub(crate) struct NewAddress {
    pub address_line_1: String,
    pub address_line_2: Option<String>,
    pub district: Option<String>,
    pub city: &'static str,
    pub postal_code: String,
    pub country: &'static str,
    pub phone: String,
}

/// A random address; about half have a second line, a third no district.
pub(crate) fn address<R: Rng + ?Sized>(rng: &mut R) -> NewAddress {
    let address_line_1 = format!(
        "{} {} {}",
        rng.random_range(1..=9_999),
        pick(rng, &STREET_NAMES),
        pick(rng, &STREET_KINDS)
    );
    let address_line_2 = rng
        .random_bool(0.5)
        .then(|| format!("{} {}", pick(rng, &STREET_NAMES), pick(rng, &STREET_KINDS)));
    let district = rng
        .random_bool(0.67)
        .then(|| pick(rng, &DISTRICTS).to_owned());
    NewAddress {
        address_line_1,
        address_line_2,
        district,
        city: pick(rng, &CITIES),
        postal_code: postal_code(rng),
        country: pick(rng, &COUNTRIES),
        phone: phone(rng),
    }
}

/// A row of `counterparty`, without its id and legal address.
#[derive(Debug, Clone)]
pub(crate) struct NewCounterparty {
    pub legal_name: String,
    pub commercial_contact: Option<String>,
    pub delivery_contact: Option<String>,
}

/// A random counterparty; a few lack one of their contacts.
pub(crate) fn counterparty<R: Rng + ?Sized>(rng: &mut R) -> NewCounterparty {
    NewCounterparty {
        legal_name: legal_name(rng),
        commercial_contact: rng.random_bool(0.9).then(|| full_name(rng)),
        delivery_contact: rng.random_bool(0.9).then(|| full_name(rng)),
    }
}

/// A row of `staff`, without its id.
#[derive(Debug, Clone)]
pub(crate) struct NewStaff {
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub department_id: i32,
    pub email_address: String,
}

/// A random staff member of `department_id`.
pub(crate) fn staff<R: Rng + ?Sized>(rng: &mut R, department_id: i32) -> NewStaff {
    let (first_name, last_name) = person(rng);
    NewStaff {
        first_name,
        last_name,
        department_id,
        email_address: email(first_name, last_name),
    }
}

/// A row of `design`, without its id.
#[derive(Debug, Clone)]
pub(crate) struct NewDesign {
    pub design_name: &'static str,
    pub file_location: &'static str,
    pub file_name: String,
}

/// A random design, its file dated within the last two years: `granite-20220430-l5fs.json`.
pub(crate) fn design<R: Rng + ?Sized>(rng: &mut R, today: Day) -> NewDesign {
    let design_name = pick(rng, &DESIGN_WORDS);
    let dated = today.plus(-rng.random_range(0..730));
    let file_name = format!(
        "{}-{}-{}.json",
        design_name.to_ascii_lowercase(),
        dated.compact(),
        random_chars(rng, LOWER_ALNUM, 4)
    );
    NewDesign {
        design_name,
        file_location: file_location(rng),
        file_name,
    }
}

/// What an order refers to: rows that already exist.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OrderRefs {
    pub staff_id: i32,
    pub counterparty_id: i32,
    pub currency_id: i32,
    pub delivery_location_id: i32,
}

/// The payment that comes with a new order.
#[derive(Debug, Clone)]
pub(crate) struct NewPayment {
    pub payment_type_id: i32,
    pub amount: Cents,
    pub paid: bool,
    pub payment_date: String,
    pub company_ac_number: i32,
    pub counterparty_ac_number: i32,
}

/// A sales order with its transaction and payment, without ids.
#[derive(Debug, Clone)]
pub(crate) struct NewSale {
    pub design_id: i32,
    pub refs: OrderRefs,
    pub units_sold: i32,
    pub unit_price: Cents,
    pub agreed_delivery_date: String,
    pub agreed_payment_date: String,
    pub payment: NewPayment,
}

/// A purchase order with its transaction and payment, without ids.
#[derive(Debug, Clone)]
pub(crate) struct NewPurchase {
    pub refs: OrderRefs,
    pub item_code: String,
    pub item_quantity: i32,
    pub item_unit_price: Cents,
    pub agreed_delivery_date: String,
    pub agreed_payment_date: String,
    pub payment: NewPayment,
}

/// Agreed delivery and payment days of an order placed on `placed`.
fn agreed_days<R: Rng + ?Sized>(rng: &mut R, placed: Day) -> (Day, Day) {
    (
        placed.plus(rng.random_range(1..=21)),
        placed.plus(rng.random_range(0..=30)),
    )
}

fn payment<R: Rng + ?Sized>(
    rng: &mut R,
    payment_type_id: i32,
    amount: Cents,
    due: Day,
    today: Day,
) -> NewPayment {
    NewPayment {
        payment_type_id,
        amount,
        // Payments due in the past have mostly been made.
        paid: due < today && rng.random_bool(0.9),
        payment_date: due.to_string(),
        company_ac_number: account_number(rng),
        counterparty_ac_number: account_number(rng),
    }
}

/// A sale placed on `placed`: prices in range, payment for the full amount on the agreed day.
pub(crate) fn sale<R: Rng + ?Sized>(
    rng: &mut R,
    design_id: i32,
    refs: OrderRefs,
    sales_receipt_id: i32,
    placed: Day,
    today: Day,
) -> NewSale {
    let units_sold = units_sold(rng);
    let unit_price = unit_price(rng);
    let (delivery, due) = agreed_days(rng, placed);
    let payment = payment(
        rng,
        sales_receipt_id,
        order_amount(units_sold, unit_price),
        due,
        today,
    );
    NewSale {
        design_id,
        refs,
        units_sold,
        unit_price,
        agreed_delivery_date: delivery.to_string(),
        agreed_payment_date: due.to_string(),
        payment,
    }
}

/// A purchase placed on `placed`, paid for in full on the agreed day.
pub(crate) fn purchase<R: Rng + ?Sized>(
    rng: &mut R,
    refs: OrderRefs,
    purchase_payment_id: i32,
    placed: Day,
    today: Day,
) -> NewPurchase {
    let item_code = item_code(rng);
    let item_quantity = item_quantity(rng);
    let item_unit_price = item_unit_price(rng);
    let (delivery, due) = agreed_days(rng, placed);
    let amount = order_amount(item_quantity, item_unit_price);
    NewPurchase {
        refs,
        item_code,
        item_quantity,
        item_unit_price,
        agreed_delivery_date: delivery.to_string(),
        agreed_payment_date: due.to_string(),
        payment: payment(rng, purchase_payment_id, amount, due, today),
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(42)
    }

    fn is_iso_date(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
            && (1..=12).contains(&s[5..7].parse::<u32>().unwrap_or(0))
            && (1..=31).contains(&s[8..10].parse::<u32>().unwrap_or(0))
    }

    #[test]
    fn civil_dates_match_the_calendar() {
        assert_eq!(Day(0).to_string(), "1970-01-01");
        assert_eq!(Day(-1).to_string(), "1969-12-31");
        assert_eq!(Day(59).to_string(), "1970-03-01");
        assert_eq!(Day(11_016).to_string(), "2000-02-29");
        assert_eq!(Day(19_112).to_string(), "2022-04-30");
        assert_eq!(Day(19_112).compact(), "20220430");
        assert_eq!(Day(20_000).to_string(), "2024-10-04");
        assert_eq!(Day(2_932_896).to_string(), "9999-12-31");
        // Every day of a leap-year span, consecutive and well formed.
        let mut previous = Day(19_000).civil();
        for n in 19_001..19_800 {
            let (y, m, d) = Day(n).civil();
            assert!(is_iso_date(&Day(n).to_string()));
            assert!((y, m, d) > previous);
            previous = (y, m, d);
        }
    }

    #[test]
    fn today_is_a_plausible_date() {
        let today = Day::today();
        assert!(today.civil().0 >= 2024);
        assert!(is_iso_date(&today.to_string()));
    }

    #[test]
    fn prices_and_quantities_stay_in_the_spec_ranges() {
        let mut rng = rng();
        for _ in 0..10_000 {
            assert!((200..=400).contains(&unit_price(&mut rng).0));
            assert!((1_000..=100_000).contains(&units_sold(&mut rng)));
            assert!((300..=100_000).contains(&item_unit_price(&mut rng).0));
            assert!((1..=1_000).contains(&item_quantity(&mut rng)));
            assert!((10_000_000..=99_999_999).contains(&account_number(&mut rng)));
        }
        // Hundredths: 1000 × 1000.00 is the spec's largest payment, 1000000.00.
        assert_eq!(order_amount(1_000, Cents(100_000)), Cents(100_000_000));
        assert_eq!(order_amount(1, Cents(300)), Cents(300));
        assert_eq!(order_amount(100_000, Cents(400)), Cents(40_000_000));
    }

    #[test]
    fn orders_and_payments_follow_the_spec() {
        let mut rng = rng();
        let today = Day(19_112);
        let refs = OrderRefs {
            staff_id: 1,
            counterparty_id: 2,
            currency_id: 3,
            delivery_location_id: 4,
        };
        for _ in 0..2_000 {
            let placed = today.plus(rng.random_range(-60..=0));
            let sale = sale(&mut rng, 5, refs, 1, placed, today);
            assert!(is_iso_date(&sale.agreed_delivery_date));
            assert!(is_iso_date(&sale.agreed_payment_date));
            assert_eq!(sale.payment.payment_date, sale.agreed_payment_date);
            let amount = sale.payment.amount.0;
            assert_eq!(amount, i64::from(sale.units_sold) * sale.unit_price.0);
            assert!((100..=100_000_000).contains(&amount));
            if sale.agreed_payment_date >= today.to_string() {
                assert!(!sale.payment.paid, "a payment due later is not paid yet");
            }
            let purchase = purchase(&mut rng, refs, 3, placed, today);
            assert!((100..=100_000_000).contains(&purchase.payment.amount.0));
            assert_eq!(purchase.item_code.len(), 7);
            assert!(purchase.item_code.bytes().all(|c| UPPER_ALNUM.contains(&c)));
            assert!(is_iso_date(&purchase.agreed_delivery_date));
        }
    }

    #[test]
    fn emails_are_first_dot_last_at_terrifictotes() {
        assert_eq!(
            email("Jeremie", "Franey"),
            "jeremie.franey@terrifictotes.com"
        );
        assert_eq!(email("Tom", "O'Keefe"), "tom.okeefe@terrifictotes.com");
        let mut rng = rng();
        for _ in 0..500 {
            let s = staff(&mut rng, 1);
            let (local, domain) = s.email_address.split_once('@').unwrap();
            assert_eq!(domain, "terrifictotes.com");
            let (first, last) = local.split_once('.').unwrap();
            assert_eq!(first, s.first_name.to_ascii_lowercase());
            assert!(!last.is_empty() && last.bytes().all(|c| c.is_ascii_lowercase()));
        }
    }

    #[test]
    fn design_files_look_like_granite_20220430_l5fs_json() {
        let mut rng = rng();
        for _ in 0..500 {
            let d = design(&mut rng, Day(19_112));
            let stem = d.file_name.strip_suffix(".json").unwrap();
            let parts: Vec<&str> = stem.split('-').collect();
            assert_eq!(parts.len(), 3, "{}", d.file_name);
            assert_eq!(parts[0], d.design_name.to_ascii_lowercase());
            assert_eq!(parts[1].len(), 8);
            assert!(parts[1].bytes().all(|c| c.is_ascii_digit()));
            assert!(parts[1] <= "20220430" && parts[1] >= "20200430");
            assert_eq!(parts[2].len(), 4);
            assert!(parts[2].bytes().all(|c| LOWER_ALNUM.contains(&c)));
            assert!(d.file_location.starts_with('/'));
        }
    }

    #[test]
    fn addresses_phones_and_postal_codes_are_well_formed() {
        let mut rng = rng();
        for _ in 0..500 {
            let a = address(&mut rng);
            let (area, number) = a.phone.split_once(' ').unwrap();
            assert_eq!((area.len(), number.len()), (4, 6));
            assert!(area
                .bytes()
                .chain(number.bytes())
                .all(|c| c.is_ascii_digit()));
            let code = a.postal_code.as_str();
            assert!(code.len() == 5 || (code.len() == 10 && code.as_bytes()[5] == b'-'));
            assert!(!a.address_line_1.is_empty() && !a.city.is_empty());
            let c = counterparty(&mut rng);
            assert!(!c.legal_name.is_empty());
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_values() {
        let a: Vec<String> = {
            let mut rng = rng();
            (0..20).map(|_| legal_name(&mut rng)).collect()
        };
        let b: Vec<String> = {
            let mut rng = rng();
            (0..20).map(|_| legal_name(&mut rng)).collect()
        };
        assert_eq!(a, b);
    }
}

//! Dates, numbers and words of a report, in `en` or `pt-BR`.

use chrono::Datelike;
use longhaul_jobs::kind::ReportLocale;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locale {
    En,
    PtBr,
}

impl From<ReportLocale> for Locale {
    fn from(locale: ReportLocale) -> Locale {
        match locale {
            ReportLocale::En => Locale::En,
            ReportLocale::PtBr => Locale::PtBr,
        }
    }
}

impl Locale {
    /// 89694 → "89,694" (en) or "89.694" (pt-BR).
    pub fn number(self, value: i64) -> String {
        let digits = value.unsigned_abs().to_string();
        let separator = match self {
            Locale::En => ',',
            Locale::PtBr => '.',
        };
        let mut grouped = String::new();
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(separator);
            }
            grouped.push(digit);
        }
        if value < 0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    }

    pub fn month(self, month: u32) -> &'static str {
        const EN: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        const PT: [&str; 12] = [
            "janeiro",
            "fevereiro",
            "março",
            "abril",
            "maio",
            "junho",
            "julho",
            "agosto",
            "setembro",
            "outubro",
            "novembro",
            "dezembro",
        ];
        let i = (month.clamp(1, 12) - 1) as usize;
        match self {
            Locale::En => EN[i],
            Locale::PtBr => PT[i],
        }
    }

    /// The month's first three letters, for the chart.
    pub fn month_short(self, month: u32) -> String {
        self.month(month).chars().take(3).collect()
    }

    /// "February 12, 2026" or "12 de fevereiro de 2026".
    pub fn date(self, at: impl Datelike) -> String {
        match self {
            Locale::En => format!("{} {}, {}", self.month(at.month()), at.day(), at.year()),
            Locale::PtBr => format!("{} de {} de {}", at.day(), self.month(at.month()), at.year()),
        }
    }

    /// "October 2026" or "outubro de 2026".
    pub fn month_of_year(self, year: i32, month: u32) -> String {
        match self {
            Locale::En => format!("{} {year}", self.month(month)),
            Locale::PtBr => format!("{} de {year}", self.month(month)),
        }
    }

    /// `part` of `whole` as a percentage with one decimal: "12.5%" (en) or
    /// "12,5%" (pt-BR); "–" of nothing.
    pub fn percent(self, part: i64, whole: i64) -> String {
        if whole <= 0 {
            return "–".to_owned();
        }
        // Rounded half up, in tenths of a percent, in integers: the same
        // digits on every machine.
        let tenths = (i128::from(part) * 1000 * 2 + i128::from(whole)) / (i128::from(whole) * 2);
        let (units, tenth) = (tenths / 10, tenths % 10);
        let point = if self == Locale::En { '.' } else { ',' };
        format!("{}{point}{tenth}%", self.number(i64::try_from(units).unwrap_or(i64::MAX)))
    }

    /// The line that says a table goes on in the CSV and JSON.
    pub fn more_rows(self, rows: usize) -> String {
        let n = self.number(rows as i64);
        match self {
            Locale::En => format!("… and {n} more rows, in the CSV and JSON files."),
            Locale::PtBr => format!("… e mais {n} linhas, nos arquivos CSV e JSON."),
        }
    }

    /// The report's words.
    pub fn text(self, key: Text) -> &'static str {
        use Text::*;
        match (self, key) {
            (Locale::En, Title) => "in travel",
            (Locale::PtBr, Title) => "em viagens",
            (Locale::En, Trips) => "Trips",
            (Locale::PtBr, Trips) => "Viagens",
            (Locale::En, Reservations) => "Reservations",
            (Locale::PtBr, Reservations) => "Reservas",
            (Locale::En, HotelNights) => "Hotel nights",
            (Locale::PtBr, HotelNights) => "Noites de hotel",
            (Locale::En, Flights) => "Flights",
            (Locale::PtBr, Flights) => "Voos",
            (Locale::En, Distance) => "Distance flown",
            (Locale::PtBr, Distance) => "Distância voada",
            (Locale::En, Countries) => "Countries",
            (Locale::PtBr, Countries) => "Países",
            (Locale::En, Cities) => "Cities",
            (Locale::PtBr, Cities) => "Cidades",
            (Locale::En, FirstTrip) => "First trip",
            (Locale::PtBr, FirstTrip) => "Primeira viagem",
            (Locale::En, LastTrip) => "Last trip",
            (Locale::PtBr, LastTrip) => "Última viagem",
            (Locale::En, BusiestMonth) => "Busiest month",
            (Locale::PtBr, BusiestMonth) => "Mês mais movimentado",
            (Locale::En, ByType) => "Reservations by type",
            (Locale::PtBr, ByType) => "Reservas por tipo",
            (Locale::En, ByMonth) => "Reservations by month",
            (Locale::PtBr, ByMonth) => "Reservas por mês",
            (Locale::En, TopAirlines) => "Top airlines",
            (Locale::PtBr, TopAirlines) => "Companhias aéreas",
            (Locale::En, TopHotels) => "Top hotels",
            (Locale::PtBr, TopHotels) => "Hotéis",
            (Locale::En, TopRentals) => "Top car rentals",
            (Locale::PtBr, TopRentals) => "Locadoras de carros",
            (Locale::En, Places) => "Where you went",
            (Locale::PtBr, Places) => "Por onde você passou",
            (Locale::En, Cancelled) => "Cancelled",
            (Locale::PtBr, Cancelled) => "Canceladas",
            (Locale::En, Empty) => "No reservations this year.",
            (Locale::PtBr, Empty) => "Nenhuma reserva neste ano.",
            (Locale::En, None_) => "none",
            (Locale::PtBr, None_) => "nenhum",
            (Locale::En, VendorTitle) => "Vendor analytics",
            (Locale::PtBr, VendorTitle) => "Análise de fornecedores",
            (Locale::En, Vendor) => "Vendor",
            (Locale::PtBr, Vendor) => "Fornecedor",
            (Locale::En, Vendors) => "Vendors",
            (Locale::PtBr, Vendors) => "Fornecedores",
            (Locale::En, Type) => "Type",
            (Locale::PtBr, Type) => "Tipo",
            (Locale::En, Changed) => "Changed",
            (Locale::PtBr, Changed) => "Alteradas",
            (Locale::En, Changes) => "Changes",
            (Locale::PtBr, Changes) => "Alterações",
            (Locale::En, ChangedReservations) => "Changed by the vendor",
            (Locale::PtBr, ChangedReservations) => "Alteradas pelo fornecedor",
            (Locale::En, VendorChanges) => "Vendor changes",
            (Locale::PtBr, VendorChanges) => "Alterações do fornecedor",
            (Locale::En, TopVendors) => "Top vendors by reservations (cancelled in red)",
            (Locale::PtBr, TopVendors) => "Principais fornecedores por reservas (canceladas em vermelho)",
            (Locale::En, AllVendors) => "All vendors",
            (Locale::PtBr, AllVendors) => "Todos os fornecedores",
            (Locale::En, Page) => "page",
            (Locale::PtBr, Page) => "página",
            (Locale::En, EmptyMonth) => "No reservations this month.",
            (Locale::PtBr, EmptyMonth) => "Nenhuma reserva neste mês.",
            (Locale::En, FunnelTitle) => "Funnel",
            (Locale::PtBr, FunnelTitle) => "Funil",
            (Locale::En, Users) => "users",
            (Locale::PtBr, Users) => "usuários",
            (Locale::En, FromPrevious) => "of the previous step",
            (Locale::PtBr, FromPrevious) => "da etapa anterior",
            (Locale::En, DropOff) => "dropped off",
            (Locale::PtBr, DropOff) => "desistiram",
            (Locale::En, Window) => "Later steps count within this many hours of the first:",
            (Locale::PtBr, Window) => "Etapas seguintes contam dentro de tantas horas da primeira:",
            (Locale::En, AllPlatforms) => "All platforms",
            (Locale::PtBr, AllPlatforms) => "Todas as plataformas",
            (Locale::En, EmptyFunnel) => "Nobody did the first step in this span.",
            (Locale::PtBr, EmptyFunnel) => "Ninguém fez a primeira etapa neste período.",
        }
    }

    /// A reservation type's name.
    pub fn kind(self, kind: &str) -> &str {
        match (self, kind) {
            (Locale::En, "flight") => "Flights",
            (Locale::En, "lodging") => "Stays",
            (Locale::En, "rental_car") => "Car rentals",
            (Locale::En, "train") => "Trains",
            (Locale::En, "bus") => "Buses",
            (Locale::En, "event") => "Events",
            (Locale::En, "food") => "Restaurants",
            (Locale::PtBr, "flight") => "Voos",
            (Locale::PtBr, "lodging") => "Hospedagens",
            (Locale::PtBr, "rental_car") => "Aluguéis de carro",
            (Locale::PtBr, "train") => "Trens",
            (Locale::PtBr, "bus") => "Ônibus",
            (Locale::PtBr, "event") => "Eventos",
            (Locale::PtBr, "food") => "Restaurantes",
            (_, other) => other,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Text {
    Title,
    Trips,
    Reservations,
    HotelNights,
    Flights,
    Distance,
    Countries,
    Cities,
    FirstTrip,
    LastTrip,
    BusiestMonth,
    ByType,
    ByMonth,
    TopAirlines,
    TopHotels,
    TopRentals,
    Places,
    Cancelled,
    Empty,
    None_,
    VendorTitle,
    Vendor,
    Vendors,
    Type,
    Changed,
    Changes,
    ChangedReservations,
    VendorChanges,
    TopVendors,
    AllVendors,
    Page,
    EmptyMonth,
    FunnelTitle,
    Users,
    FromPrevious,
    DropOff,
    Window,
    AllPlatforms,
    EmptyFunnel,
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn numbers_and_dates_follow_the_locale() {
        assert_eq!(Locale::En.number(89_694), "89,694");
        assert_eq!(Locale::PtBr.number(89_694), "89.694");
        assert_eq!(Locale::En.number(1_234_567), "1,234,567");
        assert_eq!(Locale::En.number(999), "999");
        assert_eq!(Locale::PtBr.number(-1000), "-1.000");
        let at = Utc.with_ymd_and_hms(2026, 2, 12, 22, 30, 0).single().expect("a date");
        assert_eq!(Locale::En.date(at), "February 12, 2026");
        assert_eq!(Locale::PtBr.date(at), "12 de fevereiro de 2026");
        assert_eq!(Locale::PtBr.month_short(3), "mar");
        assert_eq!(Locale::En.month_of_year(2026, 10), "October 2026");
        assert_eq!(Locale::PtBr.month_of_year(2026, 10), "outubro de 2026");
    }

    #[test]
    fn percentages_round_half_up_to_a_tenth() {
        assert_eq!(Locale::En.percent(1, 8), "12.5%");
        assert_eq!(Locale::PtBr.percent(1, 8), "12,5%");
        assert_eq!(Locale::En.percent(2, 3), "66.7%");
        assert_eq!(Locale::En.percent(1, 3), "33.3%");
        assert_eq!(Locale::En.percent(1, 2000), "0.1%", "0.05% rounds up");
        assert_eq!(Locale::En.percent(0, 5), "0.0%");
        assert_eq!(Locale::En.percent(5, 5), "100.0%");
        assert_eq!(Locale::PtBr.percent(123_456, 10_000), "1.234,6%");
        assert_eq!(Locale::En.percent(3, 0), "–");
    }
}

//! Names for the option enums every crate parses from the command line and metadata: one macro,
//! [`named_enum!`](crate::named_enum), instead of a `Display` and a `FromStr` written per enum.

/// `Display` (the name) and `FromStr` (by name; the error names `$what` and every accepted name)
/// for an enum with `const ALL: [Self; N]` and `fn name(self) -> &'static str`.
///
/// ```
/// #[derive(Debug, Clone, Copy, PartialEq)]
/// enum Shade { Light, Dark }
/// impl Shade {
///     const ALL: [Shade; 2] = [Shade::Light, Shade::Dark];
///     fn name(self) -> &'static str { match self { Shade::Light => "light", Shade::Dark => "dark" } }
/// }
/// dlvp_contract::named_enum!(Shade, "shade");
/// assert_eq!("dark".parse::<Shade>(), Ok(Shade::Dark));
/// assert_eq!(Shade::Light.to_string(), "light");
/// assert_eq!("grey".parse::<Shade>().unwrap_err(), "unknown shade `grey`; one of light, dark");
/// ```
/// What [`named_enum!`](crate::named_enum) gives a type beyond `Display` and `FromStr`: its
/// values' names, for command-line parsers that list them.
pub trait Named: Copy + 'static {
    fn name_of(self) -> &'static str;
}

#[macro_export]
macro_rules! named_enum {
    ($ty:ty, $what:literal) => {
        impl $crate::named::Named for $ty {
            fn name_of(self) -> &'static str {
                self.name()
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                <$ty>::ALL
                    .into_iter()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = <$ty>::ALL.iter().map(|v| v.name()).collect();
                        format!("unknown {} `{s}`; one of {}", $what, names.join(", "))
                    })
            }
        }
    };
}

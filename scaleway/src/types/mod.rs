//! Typed Scaleway objects, as the client reads them and sends them.
//!
//! Response types are lenient (`#[serde(default)]` on optional fields, unknown fields ignored,
//! enums with an `Unknown(String)` fallback) because Scaleway adds fields and states over time
//! and a new value must not break a running control plane. Request types serialise only what is
//! set.

mod ip;
mod product;
mod server;
mod volume;

pub use ip::{CreateIpRequest, FlexibleIp, IpServerRef};
pub use product::{Availability, GpuInfo, ServerProduct};
pub use server::{
    CreateServerRequest, ListServersFilter, PublicIp, Server, ServerAction, ServerImage, ServerRef,
    ServerState, ServerVolume, Task, UpdateServerRequest, VolumeTemplate,
};
pub use volume::{
    CreateVolumeRequest, ListVolumesFilter, Volume, VolumeReference, VolumeSpecs, VolumeStatus,
};

/// Implements `Serialize`/`Deserialize`/`Display`/`FromStr` for a string enum with an
/// `Unknown(String)` fallback.
macro_rules! string_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// The wire text of this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Unknown(other) => other.as_str(),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $($text => Self::$variant,)+
                    other => Self::Unknown(other.to_string()),
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                let Ok(value) = text.parse();
                Ok(value)
            }
        }
    };
}
pub(crate) use string_enum;

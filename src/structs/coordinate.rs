//! Network coordinates (Serf's Vivaldi model) and the RTT estimate `?near` sorts by.

use serde::{Deserialize, Serialize};

use super::codec::null_default;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Coordinate {
    #[serde(default, deserialize_with = "null_default")]
    pub vec: Vec<f64>,
    #[serde(default, deserialize_with = "null_default")]
    pub error: f64,
    #[serde(default, deserialize_with = "null_default")]
    pub adjustment: f64,
    #[serde(default, deserialize_with = "null_default")]
    pub height: f64,
}

impl Default for Coordinate {
    /// Serf's origin coordinate for an 8-dimensional space.
    fn default() -> Self {
        Coordinate {
            vec: vec![0.0; 8],
            error: 1.5,
            adjustment: 0.0,
            height: 1.0e-5,
        }
    }
}

impl Coordinate {
    /// Estimated round-trip time in seconds (Serf's `DistanceTo`).
    pub fn distance_to(&self, other: &Coordinate) -> f64 {
        let euclid: f64 = self
            .vec
            .iter()
            .zip(other.vec.iter())
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        let dist = euclid + self.height + other.height;
        let adjusted = dist + self.adjustment + other.adjustment;
        if adjusted > 0.0 { adjusted } else { dist }
    }
}

/// One node's coordinate, as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CoordinateEntry {
    pub node: String,
    #[serde(default, deserialize_with = "null_default")]
    pub segment: String,
    pub coord: Coordinate,
}

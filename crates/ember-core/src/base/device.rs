//! Devices chosen at run time, and what each can compute.

use std::fmt;

use burn_backend::{Backend, DTypeUsage};
use burn_dispatch::{Dispatch, DispatchDevice};

use crate::{DType, Error, Result};

/// Where a tensor lives and its ops run.
///
/// `Cpu` is burn-flex and always exists. `Wgpu(i)` is burn-wgpu (Vulkan, Metal, DX12), built
/// with the `wgpu` feature: `Wgpu(0)` is the default adapter (the best one wgpu finds; on a
/// machine without a GPU, Mesa's lavapipe), `Wgpu(i)` for `i >= 1` is the i-th discrete GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The CPU (burn-flex kernels).
    #[default]
    Cpu,
    /// A wgpu adapter by ordinal.
    Wgpu(usize),
}

impl Device {
    /// The CPU device.
    pub fn cpu() -> Device {
        Device::Cpu
    }

    /// The wgpu device with this ordinal (0 is the default adapter).
    pub fn wgpu(ordinal: usize) -> Device {
        Device::Wgpu(ordinal)
    }

    /// Every device built into this binary that can be opened here: the CPU always, and
    /// `Wgpu(0)` when the `wgpu` feature is on and an adapter is found.
    pub fn available() -> Vec<Device> {
        let mut out = vec![Device::Cpu];
        if Device::Wgpu(0).check_available().is_ok() {
            out.push(Device::Wgpu(0));
        }
        out
    }

    /// True when this device is built and can be opened.
    pub fn is_available(self) -> bool {
        self.check_available().is_ok()
    }

    /// Ok when this device is built and can be opened, else why not.
    pub fn check_available(self) -> Result<()> {
        self.dispatch().map(|_| ())
    }

    /// Opens the device without blocking and returns its adapter's name: on the web, WebGPU
    /// opens only this way, so await it once before using `Wgpu(i)` there (elsewhere the
    /// device also opens on first use).
    pub async fn init_async(self) -> Result<String> {
        match self {
            Device::Cpu => Ok(self.adapter_name()),
            Device::Wgpu(i) => {
                wgpu_rt::open_async(i)
                    .await
                    .map(|info| info.name)
                    .map_err(|reason| Error::DeviceUnavailable {
                        device: self,
                        reason,
                    })
            }
        }
    }

    /// False where values can be read back only asynchronously ([`crate::Tensor::to_vec_async`]):
    /// WebGPU in a browser. Ops that would read on the host work around it there.
    pub fn reads_synchronously(self) -> bool {
        !(cfg!(target_family = "wasm") && matches!(self, Device::Wgpu(_)))
    }

    /// A human-readable name of the hardware behind the device (the wgpu adapter's name).
    pub fn adapter_name(self) -> String {
        match self {
            Device::Cpu => "burn-flex CPU".to_string(),
            Device::Wgpu(i) => match wgpu_rt::open(i) {
                Ok(info) => info.name,
                Err(e) => format!("unavailable: {e}"),
            },
        }
    }

    /// True when this device computes `dtype` correctly (checked, not assumed: burn's own
    /// report is combined with Ember's list of known-bad combinations).
    pub fn supports(self, dtype: DType) -> bool {
        self.check_dtype("supports", dtype).is_ok()
    }

    /// Ok when this device computes `dtype` correctly, else an [`Error::UnsupportedDType`]
    /// that names the op, dtype, device and adapter.
    pub fn check_dtype(self, op: &'static str, dtype: DType) -> Result<()> {
        let device = self.dispatch()?;
        match self {
            Device::Cpu => Ok(()),
            Device::Wgpu(_) => {
                let refuse = |reason: &str| Error::UnsupportedDType {
                    op,
                    dtype,
                    device: self,
                    adapter: self.adapter_name(),
                    reason: reason.to_string(),
                };
                if dtype == DType::F64 {
                    return Err(refuse(
                        "burn's wgpu kernels compute exp and softmax wrongly in f64",
                    ));
                }
                if dtype == DType::Bool {
                    return Ok(());
                }
                // Without 64-bit integers (WGSL) I64 is stored as i32 (`prim::int_store`).
                let host = match dtype {
                    DType::I64
                        if !Dispatch::dtype_usage(&device, burn_backend::DType::I64)
                            .contains(DTypeUsage::Arithmetic) =>
                    {
                        burn_backend::DType::I32
                    }
                    _ => dtype.burn_host(),
                };
                let usage = Dispatch::dtype_usage(&device, host);
                if usage.contains(DTypeUsage::Arithmetic) {
                    Ok(())
                } else {
                    Err(refuse("the adapter does not report arithmetic support"))
                }
            }
        }
    }

    /// burn's device, opening a wgpu adapter on first use.
    pub fn dispatch(self) -> Result<DispatchDevice> {
        match self {
            Device::Cpu => {
                crate::base::malloc::tune_once();
                Ok(DispatchDevice::Flex(Default::default()))
            }
            Device::Wgpu(i) => wgpu_rt::dispatch(i).map_err(|reason| Error::DeviceUnavailable {
                device: self,
                reason,
            }),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Wgpu(i) => write!(f, "wgpu:{i}"),
        }
    }
}

/// Parses `cpu`, `wgpu` (ordinal 0) or `wgpu:N`, as printed by `Display`; for command lines.
///
/// ```
/// use ember_core::Device;
/// assert_eq!("wgpu:1".parse::<Device>(), Ok(Device::Wgpu(1)));
/// assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
/// assert!("cuda".parse::<Device>().is_err());
/// ```
impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Device, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "wgpu" | "gpu" => Ok(Device::Wgpu(0)),
            other => other
                .strip_prefix("wgpu:")
                .and_then(|n| n.parse().ok())
                .map(Device::Wgpu)
                .ok_or_else(|| format!("unknown device {s:?}: expected cpu, wgpu or wgpu:N")),
        }
    }
}

#[cfg(feature = "wgpu")]
mod wgpu_rt {
    //! Opening wgpu adapters once, with errors instead of panics.
    use std::collections::HashMap;
    use std::sync::{Mutex, MutexGuard, OnceLock};

    use burn_dispatch::DispatchDevice;
    use burn_dispatch::devices::wgpu::{
        AutoGraphicsApi, RuntimeOptions, WgpuInitError, WgpuSetup, try_init_setup_async,
    };
    use burn_dispatch::devices::{CubeDevice, WgpuDevice, WgpuDeviceKind};

    #[derive(Clone)]
    pub struct Info {
        pub name: String,
        device: WgpuDevice,
    }

    type Opened = HashMap<usize, Result<Info, String>>;

    fn selector(ordinal: usize) -> WgpuDevice {
        if ordinal == 0 {
            WgpuDevice::default()
        } else {
            WgpuDevice::new(WgpuDeviceKind::DiscreteGpu(ordinal))
        }
    }

    fn opened() -> MutexGuard<'static, Opened> {
        static OPENED: OnceLock<Mutex<Opened>> = OnceLock::new();
        OPENED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn describe(
        setup: Result<WgpuSetup, WgpuInitError>,
        device: WgpuDevice,
    ) -> Result<Info, String> {
        let setup = setup.map_err(|e| format!("no wgpu adapter could be opened: {e}"))?;
        let info = setup.adapter.get_info();
        // A browser may not name its adapter.
        let name = match info.name.as_str() {
            "" => format!("{:?} adapter", info.device_type),
            named => named.to_string(),
        };
        Ok(Info {
            name: format!("{name} ({:?})", setup.backend),
            device,
        })
    }

    /// The adapter, opened on first use (the lock is held while opening, so it opens once).
    #[cfg(not(target_family = "wasm"))]
    pub fn open(ordinal: usize) -> Result<Info, String> {
        use burn_dispatch::devices::wgpu::try_init_setup;
        opened()
            .entry(ordinal)
            .or_insert_with(|| {
                let device = selector(ordinal);
                let setup = try_init_setup::<AutoGraphicsApi>(&device, RuntimeOptions::default());
                describe(setup, device)
            })
            .clone()
    }

    /// On the web an adapter opens asynchronously: only one [`open_async`] opened is here.
    #[cfg(target_family = "wasm")]
    pub fn open(ordinal: usize) -> Result<Info, String> {
        opened().get(&ordinal).cloned().unwrap_or_else(|| {
            Err("on the web the WebGPU adapter opens asynchronously: \
                 await Device::init_async first"
                .to_string())
        })
    }

    /// Opens the adapter without blocking (the only way on the web). The first result for an
    /// ordinal is kept.
    pub async fn open_async(ordinal: usize) -> Result<Info, String> {
        if let Some(done) = opened().get(&ordinal) {
            return done.clone();
        }
        let device = selector(ordinal);
        let setup =
            try_init_setup_async::<AutoGraphicsApi>(&device, RuntimeOptions::default()).await;
        let result = describe(setup, device);
        opened().entry(ordinal).or_insert(result).clone()
    }

    pub fn dispatch(ordinal: usize) -> Result<DispatchDevice, String> {
        open(ordinal).map(|info| DispatchDevice::Cube(CubeDevice::Wgpu(info.device)))
    }
}

#[cfg(not(feature = "wgpu"))]
mod wgpu_rt {
    use burn_dispatch::DispatchDevice;

    pub struct Info {
        pub name: String,
    }

    const NOT_BUILT: &str = "Ember was built without the `wgpu` feature";

    pub fn open(_ordinal: usize) -> Result<Info, String> {
        Err(NOT_BUILT.to_string())
    }

    pub async fn open_async(ordinal: usize) -> Result<Info, String> {
        open(ordinal)
    }

    pub fn dispatch(_ordinal: usize) -> Result<DispatchDevice, String> {
        Err(NOT_BUILT.to_string())
    }
}

// Figures as the page shows them.
export const tokens = (n) => (n ?? 0).toLocaleString("en-US");

export function usd(value) {
  if (value === null || value === undefined) return "cost unknown";
  if (value === 0) return "$0";
  return value < 0.01 ? `$${value.toFixed(6)}` : `$${value.toFixed(4)}`;
}

export const percent = (share) => `${(100 * (share || 0)).toFixed(1)}%`;

export function ago(iso) {
  if (!iso) return "";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

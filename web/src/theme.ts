// The Mantine theme, with an organisation's (or partner's) colours.
import { colorsTuple, createTheme, type MantineColorsTuple } from '@mantine/core';
import type { Branding } from './api/client';

const hex = /^#[0-9a-fA-F]{6}$/;

export function themeFor(b: Branding) {
  const colors: Record<string, MantineColorsTuple> = {};
  let primaryColor = 'indigo';
  if (b.primary_color && hex.test(b.primary_color)) {
    colors.brand = colorsTuple(b.primary_color);
    primaryColor = 'brand';
  }
  if (b.accent_color && hex.test(b.accent_color)) colors.accent = colorsTuple(b.accent_color);
  return createTheme({ primaryColor, colors, defaultRadius: 'md', fontFamily: 'system-ui, sans-serif' });
}

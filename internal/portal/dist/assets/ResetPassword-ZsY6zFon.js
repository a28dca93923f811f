import{j as s,d as e}from"./index-BtJ4-ujf.js";function t(){return s.jsx(e,{order:2,children:"ResetPassword"})}export{t as default};
